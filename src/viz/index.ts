/** Plots (Vega-Lite v5 specifications), 2-D embedding maps and the MIME bundles of the JupyterLab extension. */
export * from './mime';
export * from './projection';
export * from './specs';
