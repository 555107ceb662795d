/**
 * Text prompts for zero-shot classification.
 *
 * X-ray prompts follow the template idea of GLoRIA (Huang et al., ICCV 2021)
 * and MGCA (Wang et al., NeurIPS 2022). A prompt joins a severity phrase, a
 * subtype phrase and a location phrase, and a few combinations are sampled
 * per class with a seed. The phrase lists below are this project's
 * own wording. ECG prompts are one fixed phrase per PTB-XL superclass.
 *
 * A positive/negative prompt pair per class is also offered. The negative of
 * a class that is already a negation ("No Finding", "Normal ECG") is never
 * built by prefixing "no": it comes from a fixed table, and any other
 * negation-like class without an entry there is rejected.
 */
import { Rng } from '../util/rng';

/** Phrase lists of one class; an empty string leaves that part out. */
export interface PromptPhrases {
  severity: string[];
  subtype: string[];
  location: string[];
}

/** The CheXpert competition classes used for zero-shot X-ray classification. */
export const CHEXPERT_ZERO_SHOT_CLASSES = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'] as const;

/** Severity x subtype x location phrases of each CheXpert class. */
export const CHEXPERT_PROMPT_PHRASES: Record<string, PromptPhrases> = {
  Atelectasis: {
    severity: ['', 'mild', 'minimal', 'subtle', 'small', 'moderate', 'extensive'],
    subtype: ['atelectasis', 'subsegmental atelectasis', 'linear atelectasis', 'platelike atelectasis',
      'discoid atelectasis', 'patchy atelectasis', 'compressive atelectasis'],
    location: ['', 'at the left lung base', 'at the right lung base', 'at both lung bases', 'in the left lower lobe',
      'in the right middle lobe', 'in the lingula'],
  },
  Cardiomegaly: {
    severity: ['', 'mild', 'moderate', 'marked', 'borderline', 'stable', 'progressive'],
    subtype: ['cardiomegaly', 'cardiac enlargement', 'enlargement of the cardiac silhouette', 'enlarged heart'],
    location: ['', 'involving the left ventricle', 'involving the left atrium', 'involving the right heart',
      'involving all chambers'],
  },
  Consolidation: {
    severity: ['', 'focal', 'patchy', 'dense', 'mild', 'extensive'],
    subtype: ['consolidation', 'airspace consolidation', 'airspace opacity', 'lobar consolidation', 'consolidative opacity'],
    location: ['', 'in the left lower lobe', 'in the right lower lobe', 'in the right upper lobe', 'in the left upper lobe',
      'in the right middle lobe', 'at the lung bases'],
  },
  Edema: {
    severity: ['', 'mild', 'moderate', 'severe', 'minimal', 'worsening', 'improving'],
    subtype: ['pulmonary edema', 'interstitial edema', 'alveolar edema', 'vascular congestion', 'perihilar edema'],
    location: ['', 'in both lungs', 'in the perihilar regions', 'in the lung bases', 'with Kerley B lines'],
  },
  'Pleural Effusion': {
    severity: ['', 'small', 'moderate', 'large', 'trace', 'tiny', 'loculated'],
    subtype: ['pleural effusion', 'effusion', 'fluid in the pleural space', 'layering pleural fluid'],
    location: ['', 'on the left', 'on the right', 'on both sides', 'at the left costophrenic angle',
      'at the right costophrenic angle'],
  },
};

/** PTB-XL diagnostic superclasses in the reference's order. */
export const PTBXL_SUPERCLASSES = ['NORM', 'MI', 'STTC', 'CD', 'HYP'] as const;

/** The one prompt of each PTB-XL superclass. */
export const ECG_SUPERCLASS_PROMPTS: Record<string, string> = {
  NORM: 'Normal ECG',
  STTC: 'ST T Change',
  MI: 'Myocardial Infarction',
  HYP: 'Hypertrophy',
  CD: 'Conduction Disturbance',
};

/** Negative prompts of classes whose name is already a negation or a statement of normality. */
export const NEGATIVE_PROMPT_OVERRIDES: Record<string, string> = {
  'No Finding': 'abnormal findings',
  'Normal ECG': 'Abnormal ECG',
  NORM: 'Abnormal ECG',
};

const NEGATION_PATTERN = /^\s*(no|not|non|without|absence of|absent|negative for|normal|unremarkable)\b/i;

/** Returns whether a class name or prompt already reads as a negation or as a normal finding. */
export function isNegation(text: string): boolean {
  return NEGATION_PATTERN.test(text);
}

/** One class's positive and negative prompt. */
export interface PromptPair {
  positive: string;
  negative: string;
}

/**
 * Returns the positive/negative prompt pair of a class: the positive is
 * `positive` (default: the class name), the negative is "no <positive>" or,
 * for a class that is already a negation, the entry of
 * {@link NEGATIVE_PROMPT_OVERRIDES}. A negation-like class without an entry
 * is rejected instead of being negated twice.
 */
export function promptPair(className: string, positive: string = className): PromptPair {
  const override = NEGATIVE_PROMPT_OVERRIDES[className] ?? NEGATIVE_PROMPT_OVERRIDES[positive];
  if (override !== undefined) return { positive, negative: override };
  if (isNegation(className) || isNegation(positive)) {
    throw new Error(`promptPair: class "${className}" (prompt "${positive}") already reads as a negation, so "no ..." ` +
      'would negate it twice; add its negative prompt to NEGATIVE_PROMPT_OVERRIDES or pass the pair yourself');
  }
  // The positive keeps its case, because lowering it would mangle abbreviations such as "ST T Change".
  return { positive, negative: `no ${positive}` };
}

/** FNV-1a hash of a string, so each class draws from its own seeded stream whatever the class order. */
function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Returns every distinct severity x subtype x location prompt of a phrase set, in list order. */
export function allPrompts(phrases: PromptPhrases): string[] {
  const prompts = new Set<string>();
  for (const severity of phrases.severity) {
    for (const subtype of phrases.subtype) {
      for (const location of phrases.location) {
        prompts.add([severity, subtype, location].filter((part) => part !== '').join(' '));
      }
    }
  }
  return [...prompts];
}

/**
 * Samples `count` distinct prompts of one class. The same class, count and
 * seed give the same prompts on every run, whichever other classes are sampled.
 */
export function samplePrompts(className: string, phrases: PromptPhrases, count: number, seed = 0): string[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`samplePrompts: count ${count}; expected a positive integer`);
  const candidates = allPrompts(phrases);
  if (count > candidates.length) {
    throw new Error(`samplePrompts: ${count} prompts requested for "${className}" but its phrases give only ${candidates.length}`);
  }
  const negated = candidates.find((prompt) => isNegation(prompt));
  if (negated !== undefined) {
    throw new Error(`samplePrompts: phrases of "${className}" build the negated prompt "${negated}"; positive prompts must not negate`);
  }
  const rng = new Rng((hashString(className) ^ seed) >>> 0);
  return rng.shuffle(candidates).slice(0, count);
}

/**
 * Returns `perClass` sampled prompts for each CheXpert class (5 per class as
 * the GLoRIA/MGCA zero-shot protocol uses). Classes default to
 * {@link CHEXPERT_ZERO_SHOT_CLASSES}.
 */
export function chexpertPromptSets(
  perClass = 5, seed = 0, classes: readonly string[] = CHEXPERT_ZERO_SHOT_CLASSES,
): Record<string, string[]> {
  const sets: Record<string, string[]> = {};
  for (const name of classes) {
    const phrases = CHEXPERT_PROMPT_PHRASES[name];
    if (phrases === undefined) {
      throw new Error(`chexpertPromptSets: no phrases for class "${name}"; expected one of ${Object.keys(CHEXPERT_PROMPT_PHRASES).join(', ')}`);
    }
    sets[name] = samplePrompts(name, phrases, perClass, seed);
  }
  return sets;
}

/** Returns the one-prompt set of each PTB-XL superclass, keyed by its code (NORM, MI, STTC, CD, HYP). */
export function ecgPromptSets(classes: readonly string[] = PTBXL_SUPERCLASSES): Record<string, string[]> {
  const sets: Record<string, string[]> = {};
  for (const code of classes) {
    const prompt = ECG_SUPERCLASS_PROMPTS[code];
    if (prompt === undefined) {
      throw new Error(`ecgPromptSets: unknown superclass "${code}"; expected one of ${Object.keys(ECG_SUPERCLASS_PROMPTS).join(', ')}`);
    }
    sets[code] = [prompt];
  }
  return sets;
}
