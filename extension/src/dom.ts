/**
 * Small DOM builders. Every string that comes from a bundle goes through `textContent` or an attribute
 * setter, never through `innerHTML`, so report text, labels and file names always show as plain text.
 */

export interface ElementOptions {
  className?: string;
  text?: string;
  attributes?: Record<string, string>;
}

/** Creates an element with an optional class, text content and attributes. */
export function createElement<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  options: ElementOptions = {},
  children: Node[] = [],
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (options.className !== undefined) element.className = options.className;
  if (options.text !== undefined) element.textContent = options.text;
  for (const [name, value] of Object.entries(options.attributes ?? {})) element.setAttribute(name, value);
  for (const child of children) element.appendChild(child);
  return element;
}

let nextId = 0;

/** Returns a document-unique id for aria-controls and label links. */
export function uniqueId(prefix: string): string {
  nextId += 1;
  return `more-ts-${prefix}-${nextId}`;
}

/** Creates a labelled `<select>` whose options show the given texts. */
export function createSelect(
  label: string,
  options: { value: string; text: string }[],
  onChange: (value: string) => void,
): { wrapper: HTMLLabelElement; select: HTMLSelectElement } {
  const select = createElement('select', { className: 'more-ts-select' });
  for (const option of options) {
    select.appendChild(createElement('option', { text: option.text, attributes: { value: option.value } }));
  }
  select.addEventListener('change', () => onChange(select.value));
  const wrapper = createElement('label', { className: 'more-ts-control', text: label }, [select]);
  return { wrapper, select };
}

/** Creates a labelled range input. */
export function createSlider(
  label: string,
  range: { min: number; max: number; step: number; value: number },
  onInput: (value: number) => void,
): { wrapper: HTMLLabelElement; slider: HTMLInputElement } {
  const slider = createElement('input', {
    className: 'more-ts-slider',
    attributes: {
      type: 'range',
      min: String(range.min),
      max: String(range.max),
      step: String(range.step),
      value: String(range.value),
    },
  });
  slider.addEventListener('input', () => onInput(Number(slider.value)));
  const wrapper = createElement('label', { className: 'more-ts-control', text: label }, [slider]);
  return { wrapper, slider };
}
