/** Parsing of command-line option values, shared by the CLIs. */

/** Parses `--name value` as a positive integer; undefined when the option was not given. */
export function positiveIntegerOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new Error(`Invalid --${name} "${value}": expected a positive integer`);
  return number;
}
