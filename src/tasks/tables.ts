/**
 * Paper tables: our measured figures beside published figures of other
 * systems on the same tasks. MoRE's own result tables could not be obtained
 * (only the abstract of arXiv 2410.16239 was reachable), so its row is kept
 * and marked unavailable. Figures measured on sample data are labelled as
 * such, with their data sizes, because they are not comparable to figures
 * from the full datasets.
 */

/** The tasks that have published figures to compare with. */
export const PAPER_TASKS = {
  chexpertFineTune: {
    title: 'CheXpert fine-tune AUROC (%)',
    columns: ['1%', '10%', '100%'],
  },
  chestXray14FineTune: {
    title: 'NIH ChestX-ray14 fine-tune AUROC (%)',
    columns: ['1%', '10%', '100%'],
  },
  chexpertZeroShot: {
    title: 'CheXpert zero-shot AUROC (%)',
    columns: ['AUROC'],
  },
  ptbxlLinearProbe: {
    title: 'PTB-XL superclass linear probe, macro AUROC (%)',
    columns: ['1%', '10%', '100%'],
  },
  ecgZeroShot: {
    title: 'ECG zero-shot AUROC (%)',
    columns: ['AUROC'],
  },
} as const;

export type PaperTask = keyof typeof PAPER_TASKS;

/** A published figure of another system. */
export interface PeerFigure {
  system: string;
  task: PaperTask;
  /** Column of the task: a label fraction (`1%`, `10%`, `100%`) or `AUROC`. */
  column: string;
  /** Figure in percent, as published. */
  value: number;
  /** Scope of the figure when it differs from the column title. */
  note?: string;
}

/** Published figures of peer systems, in percent. */
export const PEER_FIGURES: readonly PeerFigure[] = [
  { system: 'ConVIRT', task: 'chexpertFineTune', column: '1%', value: 85.9 },
  { system: 'ConVIRT', task: 'chexpertFineTune', column: '10%', value: 86.8 },
  { system: 'ConVIRT', task: 'chexpertFineTune', column: '100%', value: 87.3 },
  { system: 'GLoRIA', task: 'chexpertFineTune', column: '1%', value: 86.6 },
  { system: 'GLoRIA', task: 'chexpertFineTune', column: '10%', value: 87.8 },
  { system: 'GLoRIA', task: 'chexpertFineTune', column: '100%', value: 88.1 },
  { system: 'MaCo', task: 'chexpertFineTune', column: '1%', value: 88.7 },
  { system: 'MaCo', task: 'chexpertFineTune', column: '10%', value: 88.7 },
  { system: 'MaCo', task: 'chexpertFineTune', column: '100%', value: 88.9 },
  { system: 'MedKLIP', task: 'chestXray14FineTune', column: '1%', value: 77.2 },
  { system: 'MedKLIP', task: 'chestXray14FineTune', column: '10%', value: 78.9 },
  { system: 'MedKLIP', task: 'chestXray14FineTune', column: '100%', value: 83.2 },
  { system: 'KAD', task: 'chexpertZeroShot', column: 'AUROC', value: 90.5 },
  { system: 'MERL', task: 'ptbxlLinearProbe', column: '1%', value: 82.39 },
  { system: 'MERL', task: 'ecgZeroShot', column: 'AUROC', value: 75.2, note: 'mean over six ECG datasets' },
];

/** Origin and size of the data behind a measured figure. */
export interface MeasuredData {
  /** `sample`: a small public sample or generated data; `full`: the task's full published split. */
  kind: 'sample' | 'full';
  /** Dataset and split, for example "PTB-XL sample records, folds 1-8 / 10". */
  description: string;
  trainSize?: number;
  testSize: number;
}

/** A figure we measured. `value` is a fraction in [0, 1] (an AUROC as the metrics return it). */
export interface MeasuredFigure {
  task: PaperTask;
  column: string;
  value: number;
  data: MeasuredData;
  /** System name shown in the row (default "more-ts (this run)"). */
  system?: string;
}

/** One formatted table. */
export interface PaperTable {
  task: PaperTask;
  title: string;
  columns: string[];
  rows: { system: string; cells: string[]; note: string }[];
}

const MORE_UNAVAILABLE = 'unavailable';
const MORE_NOTE = "MoRE's published figures could not be obtained";

function checkMeasured(figure: MeasuredFigure, index: number): void {
  const task = PAPER_TASKS[figure.task];
  if (task === undefined) {
    throw new Error(`measured[${index}]: task "${figure.task}"; expected one of ${Object.keys(PAPER_TASKS).join(', ')}`);
  }
  if (!(task.columns as readonly string[]).includes(figure.column)) {
    throw new Error(`measured[${index}]: column "${figure.column}" for ${figure.task}; expected one of ${task.columns.join(', ')}`);
  }
  if (!(figure.value >= 0 && figure.value <= 1)) {
    throw new Error(`measured[${index}]: value ${figure.value}; expected a fraction in [0, 1] (an AUROC, not a percentage)`);
  }
  if (!Number.isInteger(figure.data.testSize) || figure.data.testSize < 1) {
    throw new Error(`measured[${index}]: test size ${figure.data.testSize}; expected a positive integer`);
  }
}

function describeData(data: MeasuredData): string {
  const sizes = data.trainSize === undefined ? `${data.testSize} test` : `${data.trainSize} train / ${data.testSize} test`;
  const origin = data.kind === 'sample' ? 'SAMPLE DATA, not comparable to published figures' : 'full split';
  return `${origin}: ${data.description} (${sizes})`;
}

/**
 * Builds one table per task: the peers' published rows, a MoRE row marked
 * unavailable, and our measured rows (in percent, one decimal), each with a
 * note that names its data and sizes.
 */
export function paperTables(measured: MeasuredFigure[] = []): PaperTable[] {
  measured.forEach(checkMeasured);
  return (Object.keys(PAPER_TASKS) as PaperTask[]).map((task) => {
    const { title, columns } = PAPER_TASKS[task];
    const rows: PaperTable['rows'] = [];

    const peers = PEER_FIGURES.filter((figure) => figure.task === task);
    for (const system of [...new Set(peers.map((figure) => figure.system))]) {
      const own = peers.filter((figure) => figure.system === system);
      const cells = columns.map((column) => {
        const figure = own.find((f) => f.column === column);
        return figure === undefined ? 'n/a' : String(figure.value);
      });
      const note = ['published', ...own.flatMap((f) => (f.note === undefined ? [] : [f.note]))].join('; ');
      rows.push({ system, cells, note });
    }
    rows.push({ system: 'MoRE (paper)', cells: columns.map(() => MORE_UNAVAILABLE), note: MORE_NOTE });

    const ours = measured.filter((figure) => figure.task === task);
    const groups = new Map<string, MeasuredFigure[]>();
    for (const figure of ours) {
      const key = `${figure.system ?? 'more-ts (this run)'}\u0000${describeData(figure.data)}`;
      groups.set(key, [...(groups.get(key) ?? []), figure]);
    }
    for (const [key, figures] of groups) {
      const [system, note] = key.split('\u0000');
      const cells = columns.map((column) => {
        const figure = figures.find((f) => f.column === column);
        return figure === undefined ? 'not run' : (figure.value * 100).toFixed(1);
      });
      rows.push({ system, cells, note });
    }
    return { task, title, columns: [...columns], rows };
  });
}

/** Formats tables as Markdown, with a closing statement about sample-data rows when there are any. */
export function formatPaperTables(tables: PaperTable[]): string {
  const blocks = tables.map((table) => {
    const header = `| system | ${table.columns.join(' | ')} | note |`;
    const rule = `| --- | ${table.columns.map(() => '---:').join(' | ')} | --- |`;
    const lines = table.rows.map((row) => `| ${row.system} | ${row.cells.join(' | ')} | ${row.note} |`);
    return [`### ${table.title}`, '', header, rule, ...lines].join('\n');
  });
  const notes = [
    `MoRE's own result tables could not be obtained, so its rows read "${MORE_UNAVAILABLE}".`,
    'Peer figures are as published by each system on its own setup.',
  ];
  const sampleRows = tables.flatMap((t) => t.rows).filter((row) => row.note.startsWith('SAMPLE DATA'));
  if (sampleRows.length > 0) {
    notes.push(`${sampleRows.length} of our rows come from sample data; their sizes are in the note column, ` +
      'and they show that the pipeline runs, not how well MoRE performs.');
  }
  return `${blocks.join('\n\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
}
