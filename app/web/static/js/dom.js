// A few DOM helpers: elements are built with text nodes only (never innerHTML), so nothing
// that arrives from the service can become markup or script.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== 'string') element[name] = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

export function byId(id) {
  return document.getElementById(id);
}

export function setText(element, text) {
  const value = text === null || text === undefined ? '' : String(text);
  if (element.textContent !== value) element.textContent = value;
}

// Keeps `container`'s children in step with `items` by key: a row that stays is updated in
// place (a focused input keeps its focus and what is being typed), new rows are created,
// gone rows removed, and nodes are moved only when out of order.
export function syncList(container, items, keyOf, create, update) {
  const wanted = new Set(items.map((item) => String(keyOf(item))));
  const existing = new Map();
  for (const child of Array.from(container.children)) {
    // Gone rows leave first, so that a row that stays is never moved just to pass them.
    if (child.dataset.key === undefined || !wanted.has(child.dataset.key)) child.remove();
    else existing.set(child.dataset.key, child);
  }
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (!node) {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
  }
}

// Sets an input's value from the server unless the user is editing it.
export function setInputValue(input, value) {
  if (document.activeElement === input || input.dataset.dirty === '1') return;
  if (input.value !== value) input.value = value;
}

export function markDirtyOnInput(input) {
  input.addEventListener('input', () => { input.dataset.dirty = '1'; });
  input.addEventListener('blur', () => { delete input.dataset.dirty; });
}
