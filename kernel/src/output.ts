/**
 * The output channel of the running cell. The kernel's execute handler
 * installs the writer that tslab hands it for each execute request, and the
 * display helpers publish MIME bundles through it as `display_data` or
 * `update_display_data` messages on the IOPub channel.
 */

/** A MIME bundle: MIME type to value (a string, or a JSON value for `+json` types). */
export type MimeBundle = Record<string, unknown>;

/** The content of a `display_data` / `update_display_data` message. */
export interface DisplayContent {
  data: MimeBundle;
  metadata: Record<string, unknown>;
  transient: { display_id?: string };
}

/** Sends one display message; `update` selects `update_display_data`. */
export type DisplayWriter = (content: DisplayContent, update: boolean) => void;

let currentWriter: DisplayWriter | undefined;

/** Installs the writer of the cell that is starting. Called by the kernel only. */
export function setDisplayWriter(writer: DisplayWriter): void {
  currentWriter = writer;
}

/**
 * Returns the writer of the current (or most recent) cell. Throws outside the
 * kernel, where there is no notebook to display in.
 */
export function getDisplayWriter(): DisplayWriter {
  if (currentWriter === undefined) {
    throw new Error(
      'No notebook output is available: the more-ts display helpers work only inside the more-ts Jupyter kernel, ' +
        'after a cell has started.',
    );
  }
  return currentWriter;
}
