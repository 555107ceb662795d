// One eager context serves the whole process (every thread, every Node
// worker). It is created on first use, runs ops synchronously on the calling
// thread and is never deleted, because a worker may still be decoding while
// the process exits. TFE_Execute on one context from several threads is
// thread-safe.
#include "tf_decode.h"

#include <cstring>
#include <memory>
#include <mutex>

#include "tensorflow/c/c_api.h"
#include "tensorflow/c/eager/c_api.h"
#include "tensorflow/c/tf_tstring.h"

namespace more_image {
namespace {

struct StatusDeleter {
  void operator()(TF_Status* status) const { TF_DeleteStatus(status); }
};
struct TensorDeleter {
  void operator()(TF_Tensor* tensor) const { TF_DeleteTensor(tensor); }
};
struct HandleDeleter {
  void operator()(TFE_TensorHandle* handle) const { TFE_DeleteTensorHandle(handle); }
};
struct OpDeleter {
  void operator()(TFE_Op* op) const { TFE_DeleteOp(op); }
};
using Status = std::unique_ptr<TF_Status, StatusDeleter>;
using Tensor = std::unique_ptr<TF_Tensor, TensorDeleter>;
using Handle = std::unique_ptr<TFE_TensorHandle, HandleDeleter>;
using Op = std::unique_ptr<TFE_Op, OpDeleter>;

TFE_Context* context = nullptr;
std::string context_error;
std::once_flag context_once;

// Serialised ConfigProto with intra_op_parallelism_threads = 1 (field 2) and
// inter_op_parallelism_threads = 1 (field 5): the decode kernels run on the
// calling thread, so thread pools of their own would only cost memory.
constexpr unsigned char kConfig[] = {0x10, 0x01, 0x28, 0x01};

TFE_Context* SharedContext(std::string* error) {
  std::call_once(context_once, [] {
    Status status(TF_NewStatus());
    TFE_ContextOptions* options = TFE_NewContextOptions();
    TFE_ContextOptionsSetAsync(options, 0);
    TFE_ContextOptionsSetConfig(options, kConfig, sizeof(kConfig), status.get());
    if (TF_GetCode(status.get()) == TF_OK) context = TFE_NewContext(options, status.get());
    if (TF_GetCode(status.get()) != TF_OK) {
      context = nullptr;
      context_error = std::string("cannot create a TensorFlow eager context: ") + TF_Message(status.get());
    }
    TFE_DeleteContextOptions(options);
  });
  if (context == nullptr) *error = context_error;
  return context;
}

bool Failed(TF_Status* status, std::string* error) {
  if (TF_GetCode(status) == TF_OK) return false;
  *error = TF_Message(status);
  return true;
}

// Runs `op_name` on a scalar string tensor that views `bytes` (no copy: the
// op runs synchronously and keeps no reference to its input) and copies the
// uint8 [height, width, channels] result into `image`.
bool RunDecode(const char* op_name, const uint8_t* bytes, size_t length, int channels, int ratio, DecodedImage* image,
               std::string* error) {
  TFE_Context* ctx = SharedContext(error);
  if (ctx == nullptr) return false;
  Status status(TF_NewStatus());

  Tensor contents(TF_AllocateTensor(TF_STRING, nullptr, 0, sizeof(TF_TString)));
  TF_TString* text = static_cast<TF_TString*>(TF_TensorData(contents.get()));
  TF_TString_Init(text);
  TF_TString_AssignView(text, reinterpret_cast<const char*>(bytes), length);
  Handle input(TFE_NewTensorHandle(contents.get(), status.get()));
  if (Failed(status.get(), error)) return false;

  Op op(TFE_NewOp(ctx, op_name, status.get()));
  if (Failed(status.get(), error)) return false;
  TFE_OpAddInput(op.get(), input.get(), status.get());
  if (Failed(status.get(), error)) return false;
  TFE_OpSetAttrInt(op.get(), "channels", channels);
  if (ratio > 0) {
    static const char kAccurate[] = "INTEGER_ACCURATE";
    TFE_OpSetAttrInt(op.get(), "ratio", ratio);
    TFE_OpSetAttrString(op.get(), "dct_method", kAccurate, sizeof(kAccurate) - 1);
  }

  TFE_TensorHandle* outputs[1] = {nullptr};
  int output_count = 1;
  TFE_Execute(op.get(), outputs, &output_count, status.get());
  if (Failed(status.get(), error)) return false;
  Handle output(outputs[0]);
  Tensor result(TFE_TensorHandleResolve(output.get(), status.get()));
  if (Failed(status.get(), error)) return false;
  if (TF_TensorType(result.get()) != TF_UINT8 || TF_NumDims(result.get()) != 3) {
    *error = std::string(op_name) + " returned an unexpected tensor (expected uint8 [height, width, channels])";
    return false;
  }
  image->height = static_cast<int>(TF_Dim(result.get(), 0));
  image->width = static_cast<int>(TF_Dim(result.get(), 1));
  image->channels = static_cast<int>(TF_Dim(result.get(), 2));
  const uint8_t* data = static_cast<const uint8_t*>(TF_TensorData(result.get()));
  image->data.assign(data, data + TF_TensorByteSize(result.get()));
  return true;
}

}  // namespace

bool DecodeJpeg(const uint8_t* bytes, size_t length, int channels, int ratio, DecodedImage* image, std::string* error) {
  return RunDecode("DecodeJpeg", bytes, length, channels, ratio, image, error);
}

bool DecodePng(const uint8_t* bytes, size_t length, int channels, DecodedImage* image, std::string* error) {
  return RunDecode("DecodePng", bytes, length, channels, 0, image, error);
}

const char* TensorflowVersion() { return TF_Version(); }

}  // namespace more_image
