"""Live Shopping service: real-time sales sessions between staff and VIP clients."""

__version__ = "0.1.0"
