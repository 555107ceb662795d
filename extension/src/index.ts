/**
 * JupyterLab MIME renderers for MoRE bundles: one widget per bundle kind, registered through a MIME
 * renderer extension. The views are plain DOM and canvas, loaded on first use, and they draw from the
 * saved bundle alone, so a notebook reopened without a kernel shows the same output.
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  EXPLANATION_MIME_TYPE,
  RETRIEVAL_MIME_TYPE,
  validateExplanationBundle,
  validateRetrievalBundle,
} from '../../src/viz/mime';
import { createElement } from './dom';
import type { RenderedView } from './explanation';

/** Base widget: validates the bundle, renders it into its node and shows a validation error as text. */
abstract class BundleRenderer extends Widget implements IRenderMime.IRenderer {
  private view: RenderedView | null = null;

  constructor(protected readonly mimeType: string) {
    super();
    this.addClass('more-ts-output');
  }

  protected abstract renderBundle(host: HTMLElement, data: unknown): Promise<RenderedView>;

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this.view?.dispose();
    this.view = null;
    this.node.textContent = '';
    try {
      this.view = await this.renderBundle(this.node, model.data[this.mimeType]);
    } catch (error) {
      this.node.textContent = '';
      const message = error instanceof Error ? error.message : String(error);
      this.node.appendChild(createElement('pre', { className: 'more-ts-error', text: `Cannot render ${this.mimeType}: ${message}` }));
    }
  }

  protected override onAfterAttach(message: Message): void {
    super.onAfterAttach(message);
    // Theme colours resolve only once the node is in the document.
    this.view?.redraw();
  }

  override dispose(): void {
    this.view?.dispose();
    this.view = null;
    super.dispose();
  }
}

/** Renderer of {@link EXPLANATION_MIME_TYPE} bundles. */
export class ExplanationRenderer extends BundleRenderer {
  constructor() {
    super(EXPLANATION_MIME_TYPE);
    this.addClass('more-ts-explanation-output');
  }

  protected async renderBundle(host: HTMLElement, data: unknown): Promise<RenderedView> {
    const bundle = validateExplanationBundle(data);
    const { renderExplanation } = await import('./explanation');
    return renderExplanation(host, bundle);
  }
}

/** Renderer of {@link RETRIEVAL_MIME_TYPE} bundles. */
export class RetrievalRenderer extends BundleRenderer {
  constructor() {
    super(RETRIEVAL_MIME_TYPE);
    this.addClass('more-ts-retrieval-output');
  }

  protected async renderBundle(host: HTMLElement, data: unknown): Promise<RenderedView> {
    const bundle = validateRetrievalBundle(data);
    const { renderRetrieval } = await import('./retrieval');
    return renderRetrieval(host, bundle);
  }
}

// Both renderers only write text content and canvas pixels, never HTML, so they are safe for untrusted
// notebooks and their output shows without trusting the notebook.
export const explanationRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [EXPLANATION_MIME_TYPE],
  defaultRank: 60,
  createRenderer: () => new ExplanationRenderer(),
};

export const retrievalRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [RETRIEVAL_MIME_TYPE],
  defaultRank: 60,
  createRenderer: () => new RetrievalRenderer(),
};

const extensions: IRenderMime.IExtension[] = [
  { id: 'more-ts-jupyter:explanation', rendererFactory: explanationRendererFactory, rank: 60, dataType: 'json' },
  { id: 'more-ts-jupyter:retrieval', rendererFactory: retrievalRendererFactory, rank: 60, dataType: 'json' },
];

export default extensions;
