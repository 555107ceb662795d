// N-API entry points of the more-ts image addon. Argument checks live here;
// the kernels in clahe.cc, resize.cc and tf_decode.cc trust their inputs. The
// module is context-aware (NAPI_MODULE_INIT) and keeps no per-module state,
// so Node worker threads can load it too.
#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "clahe.h"
#include "resize.h"
#include "tf_decode.h"

namespace more_image {
namespace {

// Thrown as a C++ exception inside a callback and turned into a JS error at the boundary.
struct ArgumentError {
  std::string message;
};

struct TypedArray {
  napi_typedarray_type type;
  void* data;
  size_t length;
};

void Check(napi_env env, napi_status status) {
  if (status == napi_ok) return;
  const napi_extended_error_info* info = nullptr;
  napi_get_last_error_info(env, &info);
  throw ArgumentError{std::string("N-API call failed: ") + (info && info->error_message ? info->error_message : "unknown error")};
}

std::vector<napi_value> Arguments(napi_env env, napi_callback_info info, size_t expected, const char* name) {
  size_t count = expected;
  std::vector<napi_value> args(expected);
  Check(env, napi_get_cb_info(env, info, &count, args.data(), nullptr, nullptr));
  if (count < expected) {
    throw ArgumentError{std::string(name) + ": expected " + std::to_string(expected) + " arguments, got " + std::to_string(count)};
  }
  return args;
}

// Names a JS value for an error message: a number as written, anything else by its type.
std::string Describe(napi_env env, napi_value value) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) != napi_ok) return "an unreadable value";
  switch (type) {
    case napi_number: {
      double number = 0;
      napi_get_value_double(env, value, &number);
      std::ostringstream text;
      text << number;
      return text.str();
    }
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    default: break;
  }
  bool is_typed_array = false;
  if (napi_is_typedarray(env, value, &is_typed_array) == napi_ok && is_typed_array) return "a typed array";
  return "an object";
}

// Names a typed array's element type as JavaScript does.
const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    default: return "BigInt64Array or BigUint64Array";
  }
}

TypedArray ReadTypedArray(napi_env env, napi_value value, const char* what) {
  bool is_typed_array = false;
  Check(env, napi_is_typedarray(env, value, &is_typed_array));
  if (!is_typed_array) throw ArgumentError{std::string(what) + " must be a typed array, got " + Describe(env, value)};
  TypedArray array{};
  Check(env, napi_get_typedarray_info(env, value, &array.type, &array.length, &array.data, nullptr, nullptr));
  return array;
}

TypedArray ReadBytes(napi_env env, napi_value value, const char* what) {
  TypedArray array = ReadTypedArray(env, value, what);
  if (array.type != napi_uint8_array) {
    throw ArgumentError{std::string(what) + " must be a Uint8Array or Buffer, got " + TypedArrayName(array.type)};
  }
  return array;
}

// Reads a positive integer that fits in an int (image sides, tile sizes, bin counts).
int ReadSize(napi_env env, napi_value value, const char* what, int minimum = 1) {
  double number = 0;
  if (napi_get_value_double(env, value, &number) != napi_ok || !(number >= minimum) || number > 1e9 ||
      number != std::floor(number)) {
    throw ArgumentError{std::string(what) + " must be an integer >= " + std::to_string(minimum) + ", got " + Describe(env, value)};
  }
  return static_cast<int>(number);
}

// Maximum output side and pixel count of a resize. A 65536-pixel side is far
// beyond any radiograph, and the limits stop a mistyped size from allocating
// gigabytes for filter coefficients and output before failing.
constexpr int kMaxOutputSide = 1 << 16;
constexpr int64_t kMaxOutputPixels = int64_t{1} << 28;

// Reads the output width and height of a resize, checking them against the limits above.
void ReadOutputSize(napi_env env, napi_value width_value, napi_value height_value, int* width, int* height) {
  *width = ReadSize(env, width_value, "outWidth");
  *height = ReadSize(env, height_value, "outHeight");
  if (*width > kMaxOutputSide || *height > kMaxOutputSide ||
      static_cast<int64_t>(*width) * *height > kMaxOutputPixels) {
    throw ArgumentError{"output size " + std::to_string(*width) + " x " + std::to_string(*height) +
                        " is too large: expected sides up to " + std::to_string(kMaxOutputSide) + " and up to " +
                        std::to_string(kMaxOutputPixels) + " pixels"};
  }
}

double ReadNumber(napi_env env, napi_value value, const char* what) {
  double number = 0;
  if (napi_get_value_double(env, value, &number) != napi_ok || !std::isfinite(number)) {
    throw ArgumentError{std::string(what) + " must be a finite number, got " + Describe(env, value)};
  }
  return number;
}

void CheckLength(const TypedArray& array, size_t expected, const char* what, int width, int height, int channels = 1) {
  if (array.length != expected) {
    throw ArgumentError{std::string(what) + " has " + std::to_string(array.length) + " values, expected " +
                        std::to_string(expected) + " for " + std::to_string(height) + " x " + std::to_string(width) +
                        (channels > 1 ? " x " + std::to_string(channels) : "")};
  }
}

// Creates a typed array of `length` elements and returns a pointer to its storage.
napi_value NewTypedArray(napi_env env, napi_typedarray_type type, size_t length, size_t element_size, void** data) {
  napi_value buffer;
  napi_value array;
  Check(env, napi_create_arraybuffer(env, length * element_size, data, &buffer));
  Check(env, napi_create_typedarray(env, type, length, buffer, 0, &array));
  return array;
}

napi_value NewBytes(napi_env env, const uint8_t* bytes, size_t length) {
  void* data = nullptr;
  napi_value array = NewTypedArray(env, napi_uint8_array, length, 1, &data);
  if (length > 0) std::memcpy(data, bytes, length);
  return array;
}

napi_value NewImage(napi_env env, int width, int height, const uint8_t* bytes) {
  napi_value object;
  napi_value value;
  Check(env, napi_create_object(env, &object));
  Check(env, napi_create_int32(env, width, &value));
  Check(env, napi_set_named_property(env, object, "width", value));
  Check(env, napi_create_int32(env, height, &value));
  Check(env, napi_set_named_property(env, object, "height", value));
  Check(env, napi_set_named_property(env, object, "data", NewBytes(env, bytes, static_cast<size_t>(width) * height)));
  return object;
}

// Runs `body`, turning an ArgumentError into a TypeError and bad_alloc into a RangeError. Decode
// failures throw their JS Error inside `body` and return null.
template <typename Body>
napi_value Guard(napi_env env, Body body) {
  try {
    return body();
  } catch (const ArgumentError& error) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, nullptr, error.message.c_str());
  } catch (const std::bad_alloc&) {
    napi_throw_range_error(env, nullptr, "out of memory");
  }
  return nullptr;
}

// clahe8(gray: Uint8Array, width, height, kernelRows, kernelCols, nbins, clipLimit): Uint8Array
napi_value Clahe8(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args = Arguments(env, info, 7, "clahe8");
    TypedArray gray = ReadBytes(env, args[0], "gray");
    const int width = ReadSize(env, args[1], "width", 0);
    const int height = ReadSize(env, args[2], "height", 0);
    const int nbins = ReadSize(env, args[5], "nbins");
    // More bins than 8-bit grey levels change nothing; the cap keeps the per-tile histograms small.
    if (nbins > 65536) throw ArgumentError{"nbins must be at most 65536, got " + std::to_string(nbins)};
    ClaheSettings settings{nbins, ReadNumber(env, args[6], "clipLimit"),
                           ReadSize(env, args[3], "kernelRows"), ReadSize(env, args[4], "kernelCols")};
    const size_t count = static_cast<size_t>(width) * height;
    CheckLength(gray, count, "gray", width, height);
    void* out = nullptr;
    napi_value result = NewTypedArray(env, napi_uint8_array, count, 1, &out);
    EqualizeAdapthistUint8(static_cast<const uint8_t*>(gray.data), width, height, settings, static_cast<uint8_t*>(out));
    return result;
  });
}

// resize8(src: Uint8Array, width, height, outWidth, outHeight): Uint8Array
napi_value Resize8(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args = Arguments(env, info, 5, "resize8");
    TypedArray src = ReadBytes(env, args[0], "src");
    const int width = ReadSize(env, args[1], "width");
    const int height = ReadSize(env, args[2], "height");
    int out_width = 0;
    int out_height = 0;
    ReadOutputSize(env, args[3], args[4], &out_width, &out_height);
    CheckLength(src, static_cast<size_t>(width) * height, "src", width, height);
    std::vector<uint8_t> out = ResizeBilinear8(static_cast<const uint8_t*>(src.data), width, height, out_width, out_height);
    return NewBytes(env, out.data(), out.size());
  });
}

// resizeFloat(src: Float32Array | Uint16Array | Uint8Array, width, height, outWidth, outHeight): Float32Array
napi_value ResizeFloat(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args = Arguments(env, info, 5, "resizeFloat");
    TypedArray src = ReadTypedArray(env, args[0], "src");
    const int width = ReadSize(env, args[1], "width");
    const int height = ReadSize(env, args[2], "height");
    int out_width = 0;
    int out_height = 0;
    ReadOutputSize(env, args[3], args[4], &out_width, &out_height);
    CheckLength(src, static_cast<size_t>(width) * height, "src", width, height);
    std::vector<float> out;
    if (src.type == napi_float32_array) {
      out = ResizeBilinearFloat(static_cast<const float*>(src.data), width, height, out_width, out_height);
    } else if (src.type == napi_uint16_array) {
      out = ResizeBilinearFloat(static_cast<const uint16_t*>(src.data), width, height, out_width, out_height);
    } else if (src.type == napi_uint8_array) {
      out = ResizeBilinearFloat(static_cast<const uint8_t*>(src.data), width, height, out_width, out_height);
    } else {
      throw ArgumentError{std::string("src must be a Float32Array, Uint16Array or Uint8Array, got ") + TypedArrayName(src.type)};
    }
    void* data = nullptr;
    napi_value result = NewTypedArray(env, napi_float32_array, out.size(), sizeof(float), &data);
    std::memcpy(data, out.data(), out.size() * sizeof(float));
    return result;
  });
}

// rgbToGray8(samples: Uint8Array, width, height, channels 3 | 4): Uint8Array
napi_value RgbToGray(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args = Arguments(env, info, 4, "rgbToGray8");
    TypedArray samples = ReadBytes(env, args[0], "samples");
    const int width = ReadSize(env, args[1], "width", 0);
    const int height = ReadSize(env, args[2], "height", 0);
    const int channels = ReadSize(env, args[3], "channels");
    if (channels != 3 && channels != 4) throw ArgumentError{"channels must be 3 or 4, got " + std::to_string(channels)};
    const size_t pixels = static_cast<size_t>(width) * height;
    CheckLength(samples, pixels * channels, "samples", width, height, channels);
    void* out = nullptr;
    napi_value result = NewTypedArray(env, napi_uint8_array, pixels, 1, &out);
    RgbToGray8(static_cast<const uint8_t*>(samples.data), pixels, channels, static_cast<uint8_t*>(out));
    return result;
  });
}

// Reduces decoded samples to one grey channel in place: the first channel of
// grey + alpha, Pillow's luma for RGB(A), as toGray8 in image.ts does.
void ToGray(DecodedImage* image) {
  const size_t pixels = static_cast<size_t>(image->width) * image->height;
  if (image->channels == 1) return;
  std::vector<uint8_t> gray(pixels);
  if (image->channels == 2) {
    for (size_t i = 0; i < pixels; i++) gray[i] = image->data[i * 2];
  } else {
    RgbToGray8(image->data.data(), pixels, image->channels, gray.data());
  }
  image->data.swap(gray);
  image->channels = 1;
}

// Returns {width, height, data} of a decoded grey image, resized first when
// the optional output size (arguments `first_size` and `first_size + 1`) is given.
napi_value FinishDecode(napi_env env, const std::vector<napi_value>& args, size_t given, size_t first_size,
                        DecodedImage* image) {
  ToGray(image);
  if (given >= first_size + 2) {
    napi_valuetype type;
    Check(env, napi_typeof(env, args[first_size], &type));
    if (type != napi_undefined) {
      int out_width = 0;
      int out_height = 0;
      ReadOutputSize(env, args[first_size], args[first_size + 1], &out_width, &out_height);
      if (image->width < 1 || image->height < 1) throw ArgumentError{"cannot resize an empty image"};
      std::vector<uint8_t> out = ResizeBilinear8(image->data.data(), image->width, image->height, out_width, out_height);
      return NewImage(env, out_width, out_height, out.data());
    }
  }
  return NewImage(env, image->width, image->height, image->data.data());
}

// Reads up to `capacity` arguments and returns how many the caller gave.
size_t OptionalArguments(napi_env env, napi_callback_info info, std::vector<napi_value>* args, size_t capacity) {
  size_t count = capacity;
  args->assign(capacity, nullptr);
  Check(env, napi_get_cb_info(env, info, &count, args->data(), nullptr, nullptr));
  return count;
}

// decodeJpegGray(bytes: Uint8Array, ratio 1 | 2 | 4 | 8, channels 1 | 3, outWidth?, outHeight?): {width, height, data}
// Channels 1 takes libjpeg's luma, 3 decodes RGB and converts it with Pillow's grey formula.
napi_value DecodeJpegGray(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args;
    const size_t given = OptionalArguments(env, info, &args, 5);
    if (given < 3) throw ArgumentError{"decodeJpegGray: expected the bytes, a ratio and a channel count"};
    TypedArray bytes = ReadBytes(env, args[0], "bytes");
    const int ratio = ReadSize(env, args[1], "ratio");
    if (ratio != 1 && ratio != 2 && ratio != 4 && ratio != 8) {
      throw ArgumentError{"ratio must be 1, 2, 4 or 8, got " + std::to_string(ratio)};
    }
    const int channels = ReadSize(env, args[2], "channels");
    if (channels != 1 && channels != 3) throw ArgumentError{"channels must be 1 or 3, got " + std::to_string(channels)};
    DecodedImage image;
    std::string error;
    if (!DecodeJpeg(static_cast<const uint8_t*>(bytes.data), bytes.length, channels, ratio, &image, &error)) {
      napi_throw_error(env, "ERR_IMAGE_DECODE", error.c_str());
      return nullptr;
    }
    return FinishDecode(env, args, given, 3, &image);
  });
}

// decodePngGray(bytes: Uint8Array, outWidth?, outHeight?): {width, height, data}
napi_value DecodePngGray(napi_env env, napi_callback_info info) {
  return Guard(env, [&]() -> napi_value {
    std::vector<napi_value> args;
    const size_t given = OptionalArguments(env, info, &args, 3);
    if (given < 1) throw ArgumentError{"decodePngGray: expected the bytes"};
    TypedArray bytes = ReadBytes(env, args[0], "bytes");
    DecodedImage image;
    std::string error;
    if (!DecodePng(static_cast<const uint8_t*>(bytes.data), bytes.length, 0, &image, &error)) {
      napi_throw_error(env, "ERR_IMAGE_DECODE", error.c_str());
      return nullptr;
    }
    return FinishDecode(env, args, given, 1, &image);
  });
}

napi_value Version(napi_env env, napi_callback_info) {
  napi_value value;
  napi_create_string_utf8(env, TensorflowVersion(), NAPI_AUTO_LENGTH, &value);
  return value;
}

}  // namespace
}  // namespace more_image

NAPI_MODULE_INIT() {
  const napi_property_descriptor functions[] = {
      {"clahe8", nullptr, more_image::Clahe8, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"resize8", nullptr, more_image::Resize8, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"resizeFloat", nullptr, more_image::ResizeFloat, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rgbToGray8", nullptr, more_image::RgbToGray, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodeJpegGray", nullptr, more_image::DecodeJpegGray, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"decodePngGray", nullptr, more_image::DecodePngGray, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"tensorflowVersion", nullptr, more_image::Version, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(functions) / sizeof(functions[0]), functions) != napi_ok) return nullptr;
  return exports;
}
