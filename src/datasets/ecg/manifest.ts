/**
 * DataFrame conversion for the ECG and X-ray dataset manifests. Skip
 * summaries use the `ManifestSummary` shared with the X-ray manifests.
 */

import type * as Polars from 'nodejs-polars';

let polarsModule: typeof Polars | null = null;

/**
 * Loads nodejs-polars on first use. Throws with the loader's own message when
 * the native binding for this platform is missing. nodejs-polars 0.24.0 lists
 * prebuilt bindings only for x64 and arm64 Linux (glibc and musl) and macOS,
 * x64 Windows and arm64 Android.
 */
export function loadPolars(): typeof Polars {
  if (polarsModule !== null) return polarsModule;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    polarsModule = require('nodejs-polars') as typeof Polars;
  } catch (error) {
    throw new Error(
      `nodejs-polars could not load, so no DataFrame can be built (${(error as Error).message.split('\n')[0]}). ` +
        `Install the nodejs-polars native package for this platform and Node ${process.versions.node}, ` +
        'or use the manifest rows directly',
    );
  }
  return polarsModule;
}

/** Column data types that a manifest can request. A column without one gets the type that polars infers. */
export const COLUMN_DTYPES = ['Int64', 'Float64', 'Float32', 'UInt8', 'String', 'Bool', 'Datetime'] as const;
export type ColumnDtype = (typeof COLUMN_DTYPES)[number];

function polarsDtype(polars: typeof Polars, dtype: ColumnDtype): Polars.DataType {
  switch (dtype) {
    case 'Int64':
      return polars.Int64;
    case 'Float64':
      return polars.Float64;
    case 'Float32':
      return polars.Float32;
    case 'UInt8':
      return polars.UInt8;
    case 'String':
      return polars.String;
    case 'Bool':
      return polars.Bool;
    case 'Datetime':
      return polars.Datetime('ms');
    default:
      throw new Error(`Invalid column dtype "${String(dtype)}": expected one of ${COLUMN_DTYPES.join(', ')}`);
  }
}

/**
 * Builds a DataFrame from equal-length columns, in the order given. `dtypes`
 * fixes the type of the named columns (null and undefined cells become
 * nulls). Throws when the columns differ in length or a dtype names no column.
 */
export function columnsToDataFrame(
  columns: Record<string, unknown[]>,
  dtypes: Partial<Record<string, ColumnDtype>> = {},
): Polars.DataFrame {
  const names = Object.keys(columns);
  const height = names.length > 0 ? columns[names[0]].length : 0;
  const uneven = names.filter((name) => columns[name].length !== height);
  if (uneven.length > 0) {
    const lengths = uneven.map((name) => `${name} has ${columns[name].length}`).join(', ');
    throw new Error(`Columns differ in length: ${names[0]} has ${height} rows but ${lengths}`);
  }
  const unknown = Object.keys(dtypes).filter((name) => !(name in columns));
  if (unknown.length > 0) throw new Error(`dtypes name columns that do not exist: ${unknown.join(', ')}`);

  const polars = loadPolars();
  if (Object.keys(dtypes).length === 0) return polars.DataFrame(columns);
  const series = names.map((name) => {
    const dtype = dtypes[name];
    const values = columns[name].map((value) => (value === undefined ? null : value));
    return dtype === undefined ? polars.Series(name, values) : polars.Series(name, values, polarsDtype(polars, dtype));
  });
  return polars.DataFrame(series);
}
