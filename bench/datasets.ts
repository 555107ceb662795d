/**
 * Dataset benchmark: our readers against the Python reference tools, in the
 * same run on the same machine.
 *
 * Figures: WFDB records read per second (`readWfdbRecordSync` against
 * `wfdb.rdsamp`, both returning float64 physical values) over every record in
 * test/fixtures/datasets/ecg/records, and 500 Hz 12-lead records preprocessed
 * per second (`preprocessEcg` against scipy.signal's resample_poly and
 * medfilt), and X-ray images preprocessed per second along the fast and the
Pillow-exact resize paths (bench/datasets_xray.ts).
 * Each line ends in `ratio=X`, ours over the reference's throughput.
 * Run with `npm run bench:datasets`; `-- --records DIR` times WFDB reading on
 * the records under DIR instead (for example a PTB-XL `records100` folder).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { preprocessEcg } from '../src/datasets/ecg';
import { parseWfdbHeader, readWfdbRecordSync, selectTwelveLeads } from '../src/datasets/wfdb';
import { xrayPreprocessFigure } from './datasets_xray';

const RECORDS = path.resolve(__dirname, '..', 'test', 'fixtures', 'datasets', 'ecg', 'records');
const MIN_SECONDS = 3;

/** Returns true for a multi-segment layout header, which declares 0 samples and has no data to time. */
function isLayoutHeader(file: string): boolean {
  return parseWfdbHeader(fs.readFileSync(file, 'latin1'), file).sampleCount === 0;
}

/** Returns the record paths (without extension) of every header under `folder`, layout headers left out. */
function findRecords(folder: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) found.push(...findRecords(full));
    else if (entry.name.endsWith('.hea') && !isLayoutHeader(full)) found.push(full.slice(0, -'.hea'.length));
  }
  return found.sort();
}

/** Returns items processed per second, looping over `items` until `MIN_SECONDS` pass, after one warm-up call. */
function rate<T>(items: readonly T[], step: (item: T) => void): number {
  step(items[0]);
  let count = 0;
  const start = process.hrtime.bigint();
  for (;;) {
    for (const item of items) step(item);
    count += items.length;
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    if (elapsed >= MIN_SECONDS) return count / elapsed;
  }
}

function runReference(config: object): { wfdb_records_per_second: number; preprocess_records_per_second: number } {
  const python = path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const result = spawnSync(python, [path.join(__dirname, 'datasets.py'), JSON.stringify(config)], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(
      `The Python reference failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr}\n` +
        'Install the reference tools with `node scripts/setup/python-env.js --reference`.',
    );
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string);
}

function main(): void {
  const flag = process.argv.indexOf('--records');
  const folder = flag >= 0 ? path.resolve(process.argv[flag + 1] ?? '') : RECORDS;
  if (!fs.existsSync(folder)) throw new Error(`Record folder ${folder} not found; pass --records DIR with WFDB records under it`);
  const wfdbRecords = findRecords(folder);
  const preprocessRecords = findRecords(RECORDS).filter((record) => /00001_hr|HR06000|ludb\/2$/.test(record));

  const reference = runReference({ wfdb_records: wfdbRecords, preprocess_records: preprocessRecords, min_seconds: MIN_SECONDS });

  const oursRead = rate(wfdbRecords, (record) => readWfdbRecordSync(record));
  const read = `${wfdbRecords.length} records`;
  process.stdout.write(
    `wfdb read (${read}): ours ${oursRead.toFixed(1)} records/s, wfdb.rdsamp ${reference.wfdb_records_per_second.toFixed(1)} records/s, ` +
      `ratio=${(oursRead / reference.wfdb_records_per_second).toFixed(2)}\n`,
  );

  const leads = preprocessRecords.map((record) => selectTwelveLeads(readWfdbRecordSync(record)).physical);
  const oursPreprocess = rate(leads, (signals) => preprocessEcg(signals, 500));
  process.stdout.write(
    `ecg preprocess 500 -> 100 Hz (12 x 5000): ours ${oursPreprocess.toFixed(1)} records/s, scipy ${reference.preprocess_records_per_second.toFixed(1)} records/s, ` +
      `ratio=${(oursPreprocess / reference.preprocess_records_per_second).toFixed(2)}\n`,
  );
}

main();
void xrayPreprocessFigure().then((line) => process.stdout.write(`${line}\n`));
