/**
 * DataFrame conversion for the ECG dataset manifests. Skip summaries use the
 * `ManifestSummary` shared with the X-ray manifests.
 */

import type * as Polars from 'nodejs-polars';

let polarsModule: typeof Polars | null = null;

/**
 * Loads nodejs-polars on first use. Throws with the loader's own message when
 * its native binding is missing, as happens where npm skipped the platform
 * package because of its Node engine range.
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

/** Builds a DataFrame from equal-length columns. */
export function columnsToDataFrame(columns: Record<string, unknown[]>): Polars.DataFrame {
  const polars = loadPolars();
  return polars.DataFrame(columns);
}
