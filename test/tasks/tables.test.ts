import { strict as assert } from 'assert';

import { PEER_FIGURES, formatPaperTables, paperTables } from '../../src/tasks/tables';

const sampleProbe = {
  task: 'ptbxlLinearProbe' as const,
  column: '1%',
  value: 0.61234,
  data: { kind: 'sample' as const, description: 'PTB-XL sample records', trainSize: 40, testSize: 12 },
};

describe('tasks/tables', () => {
  it('lists every published peer figure', () => {
    const text = formatPaperTables(paperTables());
    for (const figure of PEER_FIGURES) {
      assert.ok(text.includes(`| ${figure.system} |`), `${figure.system} has a row`);
      assert.ok(text.includes(` ${figure.value} `), `${figure.system} ${figure.column} shows ${figure.value}`);
    }
  });

  it('keeps the MoRE row marked unavailable', () => {
    const tables = paperTables();
    for (const table of tables) {
      const more = table.rows.find((row) => row.system === 'MoRE (paper)');
      assert.ok(more, `${table.task} has a MoRE row`);
      assert.deepEqual(more.cells, table.columns.map(() => 'unavailable'));
    }
  });

  it('places peer figures in their columns', () => {
    const chexpert = paperTables().find((t) => t.task === 'chexpertFineTune');
    const gloria = chexpert?.rows.find((row) => row.system === 'GLoRIA');
    assert.deepEqual(gloria?.cells, ['86.6', '87.8', '88.1']);
    const merl = paperTables().find((t) => t.task === 'ptbxlLinearProbe')?.rows.find((row) => row.system === 'MERL');
    assert.deepEqual(merl?.cells, ['82.39', 'n/a', 'n/a']);
  });

  it('says plainly that a figure comes from sample data', () => {
    const tables = paperTables([sampleProbe]);
    const ours = tables.find((t) => t.task === 'ptbxlLinearProbe')?.rows.find((row) => row.system === 'more-ts (this run)');
    assert.deepEqual(ours?.cells, ['61.2', 'not run', 'not run']);
    assert.match(ours?.note ?? '', /^SAMPLE DATA, not comparable to published figures: PTB-XL sample records \(40 train \/ 12 test\)$/);
    assert.match(formatPaperTables(tables), /1 of our rows come from sample data/);
  });

  it('rejects percentages given as values', () => {
    assert.throws(() => paperTables([{ ...sampleProbe, value: 61.2 }]), /value 61.2; expected a fraction in \[0, 1\]/);
  });

  it('rejects an unknown column', () => {
    assert.throws(() => paperTables([{ ...sampleProbe, column: '5%' }]), /column "5%" for ptbxlLinearProbe; expected one of 1%, 10%, 100%/);
  });
});
