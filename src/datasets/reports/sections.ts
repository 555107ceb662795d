/**
 * Report text preparation for MIMIC-CXR free-text reports: keep the FINDINGS
 * and IMPRESSION sections (the whole text when neither exists), drop
 * underscores (MIMIC's de-identification marks), collapse whitespace and drop
 * sentences that mention a clock time.
 */

/** A section header: an upper-case name followed by a colon at the start of a line, as `FINDINGS:`. */
const SECTION_HEADER = /^[ \t]*([A-Z][A-Z ()/&-]*):/gm;

/** A clock time such as `10:42`, `4:15 p.m.` or `9 am`. */
const CLOCK_TIME = /\b\d{1,2}:\d{2}\b|\b\d{1,2}(:\d{2})?\s*([ap]\.m\.|[ap]m\b)/i;

/** Abbreviations whose final period does not end a sentence (compared in lower case). */
const ABBREVIATIONS = ['a.m.', 'p.m.', 'dr.', 'mr.', 'ms.', 'mrs.', 'e.g.', 'i.e.', 'vs.'];

/** Returns true for a missing report: null, undefined, blank, or the literal `nan` that pandas writes for an empty cell. */
export function isMissingText(text: string | null | undefined): text is null | undefined {
  if (text === null || text === undefined) return true;
  const trimmed = text.trim();
  return trimmed === '' || trimmed.toLowerCase() === 'nan';
}

/** Returns the sections of `text` by header name; a repeated header keeps its first occurrence. */
export function reportSections(text: string): Map<string, string> {
  const headers = [...text.matchAll(SECTION_HEADER)];
  const sections = new Map<string, string>();
  headers.forEach((header, index) => {
    const name = header[1].trim();
    const start = header.index + header[0].length;
    const end = index + 1 < headers.length ? headers[index + 1].index : text.length;
    if (!sections.has(name)) sections.set(name, text.slice(start, end));
  });
  return sections;
}

/** Returns FINDINGS and IMPRESSION joined by a space, whichever exist, or the whole text when neither does. */
export function extractFindingsAndImpression(text: string): string {
  const sections = reportSections(text);
  const parts = ['FINDINGS', 'IMPRESSION'].filter((name) => sections.has(name)).map((name) => sections.get(name) as string);
  return parts.length > 0 ? parts.join(' ') : text;
}

/** Splits text at `.`, `!` or `?` followed by whitespace, except after the abbreviations above. */
export function splitSentences(text: string): string[] {
  const sentences: string[] = [];
  let start = 0;
  for (const match of text.matchAll(/[.!?]\s+/g)) {
    const candidate = text.slice(start, match.index + 1);
    const lower = candidate.toLowerCase();
    if (ABBREVIATIONS.some((abbreviation) => lower.endsWith(abbreviation))) continue;
    sentences.push(candidate);
    start = match.index + match[0].length;
  }
  if (start < text.length) sentences.push(text.slice(start));
  return sentences;
}

/** Drops underscores, collapses whitespace and removes every sentence that contains a clock time. */
export function cleanReportText(text: string): string {
  const collapsed = text.replace(/_/g, '').replace(/\s+/g, ' ').trim();
  return splitSentences(collapsed)
    .filter((sentence) => !CLOCK_TIME.test(sentence))
    .join(' ')
    .trim();
}

/**
 * Prepares a MIMIC-CXR report for the text encoder (sections, then cleaning).
 * Returns null when the report is missing or nothing remains after cleaning.
 */
export function prepareXrayReport(text: string | null | undefined): string | null {
  if (isMissingText(text)) return null;
  const cleaned = cleanReportText(extractFindingsAndImpression(text));
  return isMissingText(cleaned) ? null : cleaned;
}
