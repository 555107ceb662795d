/**
 * Source change applied to tfjs-node's addon before the set-up compiles it
 * (native-backend.js): `loadSavedModel(exportDir, tags, config)` takes an
 * optional third argument, a Uint8Array holding a serialised TensorFlow
 * `ConfigProto`, and passes it to the session with `TF_SetConfig`. The addon
 * exports `sessionConfigSupported: true` so that the library can tell a
 * patched build from a prebuilt one.
 *
 * The graph runner uses it to give the sessions of batch-split inference
 * graphs one intra-op thread each (src/backend/graph/compile.ts).
 *
 * Each edit replaces one exact passage of tfjs-node 4.22.0's sources and
 * fails with the file's name when the passage is missing, so a new tfjs-node
 * version cannot be patched half-way.
 */
'use strict';

const fs = require('fs');
const path = require('path');

/** Bumped whenever the edits change, so cached builds of an older edit are not reused. */
const PATCH_VERSION = 1;

/** Start of the comment every edit leaves, for any version of the edits. */
const MARKER_PREFIX = '// more-ts: session config patch';
const MARKER = `${MARKER_PREFIX} ${PATCH_VERSION}`;

const EDITS = [
  {
    file: 'tfjs_backend.h',
    from: `  napi_value LoadSavedModel(napi_env env, napi_value export_dir,
                            napi_value tags_value);`,
    to: `  ${MARKER}
  napi_value LoadSavedModel(napi_env env, napi_value export_dir,
                            napi_value tags_value,
                            napi_value config_value = nullptr);`,
  },
  {
    file: 'tfjs_backend.cc',
    from: `napi_value TFJSBackend::LoadSavedModel(napi_env env,
                                       napi_value export_dir_value,
                                       napi_value tags_value) {
  TF_SessionOptions *session_options = TF_NewSessionOptions();
`,
    to: `napi_value TFJSBackend::LoadSavedModel(napi_env env,
                                       napi_value export_dir_value,
                                       napi_value tags_value,
                                       napi_value config_value) {
  TF_SessionOptions *session_options = TF_NewSessionOptions();
  ${MARKER}
  if (config_value != nullptr) {
    napi_valuetype config_type;
    if (napi_typeof(env, config_value, &config_type) != napi_ok) {
      TF_DeleteSessionOptions(session_options);
      NAPI_THROW_ERROR(env, "Cannot read the session config argument");
      return nullptr;
    }
    if (config_type != napi_undefined) {
      bool is_typed_array = false;
      napi_typedarray_type array_type = napi_int8_array;
      size_t length = 0;
      void *data = nullptr;
      if (napi_is_typedarray(env, config_value, &is_typed_array) == napi_ok &&
          is_typed_array) {
        napi_get_typedarray_info(env, config_value, &array_type, &length,
                                 &data, nullptr, nullptr);
      }
      if (!is_typed_array || array_type != napi_uint8_array) {
        TF_DeleteSessionOptions(session_options);
        NAPI_THROW_ERROR(env, "The session config must be a Uint8Array holding a serialised ConfigProto");
        return nullptr;
      }
      TF_AutoStatus config_status;
      TF_SetConfig(session_options, data, length, config_status.status);
      if (TF_GetCode(config_status.status) != TF_OK) {
        TF_DeleteSessionOptions(session_options);
        NAPI_THROW_ERROR(env, "Invalid session config: %s", TF_Message(config_status.status));
        return nullptr;
      }
    }
  }
`,
  },
  {
    file: 'tfjs_binding.cc',
    from: `  // Load saved model takes 2 params: export_dir, tags:
  size_t argc = 2;
  napi_value args[2];`,
    to: `  ${MARKER}: export_dir, tags and an optional config.
  size_t argc = 3;
  napi_value args[3];`,
  },
  {
    file: 'tfjs_binding.cc',
    from: '  return backend->LoadSavedModel(env, args[0], args[1]);',
    to: '  return backend->LoadSavedModel(env, args[0], args[1], argc >= 3 ? args[2] : nullptr);',
  },
  {
    file: 'tfjs_binding.cc',
    from: '  // Set all export values list here.',
    to: `  ${MARKER}: tells the library that loadSavedModel takes a config.
  napi_value session_config_supported;
  nstatus = napi_get_boolean(env, true, &session_config_supported);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, exports);

  // Set all export values list here.`,
  },
  {
    file: 'tfjs_binding.cc',
    from: '      {"TF_Version", nullptr, nullptr, nullptr, nullptr, tf_version,',
    to: `      {"sessionConfigSupported", nullptr, nullptr, nullptr, nullptr,
       session_config_supported, napi_default, nullptr},
      {"TF_Version", nullptr, nullptr, nullptr, nullptr, tf_version,`,
  },
];

/**
 * Applies the edits to the `binding/` sources of the tfjs-node package in
 * `packageDir`. A file that already carries this version's marker is left
 * as it is, and one patched by another version is an error: its passages
 * have changed, so `npm ci` must restore the package first.
 * Every file is edited in memory first, so a missing passage in one file
 * leaves all of them unchanged.
 */
function patchBinding(packageDir) {
  const byFile = new Map();
  for (const edit of EDITS) {
    if (!byFile.has(edit.file)) byFile.set(edit.file, []);
    byFile.get(edit.file).push(edit);
  }
  const patched = [];
  for (const [name, edits] of byFile) {
    const file = path.join(packageDir, 'binding', name);
    let text = fs.readFileSync(file, 'utf8');
    if (text.includes(`${MARKER}\n`) || text.includes(`${MARKER}:`)) continue;
    if (text.includes(MARKER_PREFIX)) {
      throw new Error(`cannot patch ${file}: it carries another version of the more-ts patch; reinstall @tensorflow/tfjs-node (npm ci) and run the set-up again`);
    }
    for (const edit of edits) {
      const at = text.indexOf(edit.from);
      if (at === -1 || text.indexOf(edit.from, at + 1) !== -1) {
        throw new Error(`cannot patch ${file}: the passage to replace is ${at === -1 ? 'missing' : 'not unique'} (${edit.from.split('\n')[0].trim()})`);
      }
      text = text.slice(0, at) + edit.to + text.slice(at + edit.from.length);
    }
    patched.push({ file, text });
  }
  for (const { file, text } of patched) {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }
}

module.exports = { patchBinding, PATCH_VERSION, EDITS, MARKER };
