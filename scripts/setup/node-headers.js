/**
 * The location of Node's headers for node-gyp. Under npm, npm passes its
 * `nodedir` setting. Run alone, node-gyp would download the headers from
 * nodejs.org, so this points it at the headers installed with Node.
 */
'use strict';

const fs = require('fs');
const path = require('path');

/** Returns the `--nodedir` argument for node-gyp, or none when npm sets it or Node has no installed headers. */
function nodedirArguments() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

module.exports = { nodedirArguments };
