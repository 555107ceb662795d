# The more-ts image addon: CLAHE, Pillow's bilinear resize and grey conversion,
# and JPEG/PNG decoding through TensorFlow's C API. scripts/setup/native-image.js
# builds it and passes `tensorflow_include` (the headers of the TensorFlow wheel),
# `tensorflow_link_dir` (tfjs-node's deps/lib, with the libtensorflow.so link its
# own addon is linked against) and `tensorflow_runtime_dir` (the real folder of
# those libraries, recorded as RUNPATH).
{
  'variables': {
    'tensorflow_include%': '',
    'tensorflow_link_dir%': '',
    'tensorflow_runtime_dir%': '',
  },
  'targets': [{
    'target_name': 'more_image',
    'sources': ['src/addon.cc', 'src/clahe.cc', 'src/resize.cc', 'src/tf_decode.cc'],
    'include_dirs': ['<(tensorflow_include)'],
    'cflags!': ['-fno-exceptions'],
    'cflags_cc!': ['-fno-exceptions', '-std=gnu++17'],
    # No contraction into fused multiply-adds: the kernels must round as the TypeScript does.
    'cflags_cc': ['-std=c++17', '-O3', '-fexceptions', '-ffp-contract=off', '-fno-fast-math'],
    'defines': ['NAPI_VERSION=8'],
    'libraries': ['-L<(tensorflow_link_dir)', '-ltensorflow', '-ltensorflow_framework', '-Wl,-rpath,<(tensorflow_runtime_dir)'],
  }],
}
