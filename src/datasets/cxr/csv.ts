/**
 * A strict CSV reader (RFC 4180: comma separated, double-quoted cells with
 * doubled quotes inside, newlines allowed in quoted cells, LF or CRLF line
 * ends) for the label and metadata tables of the X-ray datasets. Files ending
 * in `.gz` are decompressed first, as PhysioNet publishes them.
 *
 * The manifests are built from these rows and offer `toDataFrame()` for
 * nodejs-polars. This reader stays in place of `pl.readCSV` because its
 * errors name the file and line of a malformed row.
 */

import * as fs from 'fs';
import * as zlib from 'zlib';

/** Error raised for a table that cannot be read; the message names the file and line. */
export class CsvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsvError';
  }
}

/** A parsed table: the header cells and each data row with the line it starts on (1-based). */
export interface CsvTable {
  file: string;
  header: string[];
  rows: { line: number; cells: string[] }[];
}

/** Parses CSV text; `file` names the source in errors. Every row must have as many cells as the header. */
export function parseCsv(text: string, file: string): CsvTable {
  const records: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let cell = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let cellStarted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endRecord = (): void => {
    cells.push(cell);
    if (!(cells.length === 1 && cells[0] === '' && !cellStarted)) records.push({ line: recordLine, cells });
    cells = [];
    cell = '';
    cellStarted = false;
  };
  for (; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (ch === '\n') line++;
        cell += ch;
      }
      continue;
    }
    if (ch === '"') {
      if (cell !== '') throw new CsvError(`Invalid CSV ${file} line ${line}: a quote inside the unquoted cell "${cell}"`);
      quoted = true;
      cellStarted = true;
    } else if (ch === ',') {
      cells.push(cell);
      cell = '';
      cellStarted = true;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      cell += ch;
    }
  }
  if (quoted) throw new CsvError(`Invalid CSV ${file}: the quoted cell opened on line ${recordLine} is never closed`);
  if (cell !== '' || cells.length > 0 || cellStarted) endRecord();
  if (records.length === 0) throw new CsvError(`Invalid CSV ${file}: the file is empty, expected a header line`);
  const header = records[0].cells.map((name) => name.trim());
  const rows = records.slice(1);
  for (const row of rows) {
    if (row.cells.length !== header.length) {
      throw new CsvError(
        `Invalid CSV ${file} line ${row.line}: ${row.cells.length} cells, expected ${header.length} as in the header (${header.join(', ')})`,
      );
    }
  }
  return { file, header, rows };
}

/** Reads and parses a CSV file, decompressing `.gz` files. */
export function readCsv(file: string): CsvTable {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CsvError(`Cannot read CSV ${file}: ${code === 'ENOENT' ? 'file not found' : (error as Error).message}`);
  }
  if (file.endsWith('.gz')) {
    try {
      bytes = zlib.gunzipSync(bytes);
    } catch (error) {
      throw new CsvError(`Cannot decompress ${file}: ${(error as Error).message}`);
    }
  }
  return parseCsv(bytes.toString('utf8'), file);
}

/** Returns `name.csv` in `dir`, or `name.csv.gz` when only the compressed file exists. */
export function findTable(dir: string, name: string): string {
  const plain = `${dir}/${name}.csv`;
  if (fs.existsSync(plain)) return plain;
  const compressed = `${plain}.gz`;
  if (fs.existsSync(compressed)) return compressed;
  throw new CsvError(`Table ${name}.csv (or ${name}.csv.gz) not found in ${dir}`);
}

/** Returns the index of each requested column, or throws naming the missing ones. */
export function columnIndex(table: CsvTable, names: readonly string[]): Record<string, number> {
  const index: Record<string, number> = {};
  const missing: string[] = [];
  for (const name of names) {
    const at = table.header.indexOf(name);
    if (at < 0) missing.push(name);
    else index[name] = at;
  }
  if (missing.length > 0) {
    throw new CsvError(`Missing column(s) ${missing.join(', ')} in ${table.file}: the header is ${table.header.join(', ')}`);
  }
  return index;
}

/** Parses a non-negative integer id cell, or throws naming the file, line and column. */
export function parseId(value: string, table: CsvTable, line: number, column: string): number {
  const text = value.trim();
  if (!/^\d+$/.test(text)) throw new CsvError(`Invalid ${column} "${value}" in ${table.file} line ${line}: expected a non-negative integer`);
  return Number(text);
}
