import { readWfdbRecord, WfdbReadOptions } from '../wfdb/record';
import { selectTwelveLeads } from '../wfdb/leads';
import { EcgArray, EcgPreprocessOptions, preprocessEcg } from './preprocess';

/**
 * Reads a WFDB record, picks the twelve leads by name in canonical order
 * (I, II, III, aVR, aVL, aVF, V1-V6) and preprocesses them. With the default
 * options a 10 s record becomes a 12 x 1000 array at 100 Hz scaled to [-1, 1].
 */
export async function loadPreprocessedEcg(
  recordPath: string,
  options: EcgPreprocessOptions & WfdbReadOptions = {},
): Promise<EcgArray> {
  const record = await readWfdbRecord(recordPath, options);
  const twelve = selectTwelveLeads(record);
  return preprocessEcg(twelve.physical, twelve.samplingFrequency, options);
}
