// The two libtorch calls fugue needs that tch does not bind: fbgemm's matrix
// product with the weights packed once as fp16 (fp32 inputs and outputs). See
// `fp16_gemm.rs`. Errors come back as text, never as C++ exceptions across the
// boundary.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <exception>

namespace {

// Both calls warn, once per process, that they are deprecated (fugue pins its
// libtorch; see `fp16_gemm.rs`). The warning goes to stderr as a bare line that
// would break a server's JSON logs, so they run with a handler that drops
// warnings (the handler is the calling thread's own).
class DropWarnings final : public c10::WarningHandler {
 public:
  void process(const c10::Warning&) override {}
};

template <typename F>
at::Tensor* guarded(char* error, size_t capacity, F make) {
  static DropWarnings drop;
  c10::WarningUtils::WarningHandlerGuard quiet(&drop);
  try {
    return new at::Tensor(make());
  } catch (const std::exception& failure) {
    std::strncpy(error, failure.what(), capacity - 1);
    error[capacity - 1] = '\0';
    return nullptr;
  }
}

}  // namespace

// `weight` is (out, in), as a dense layer stores it.
extern "C" at::Tensor* fugue_fp16_pack(const at::Tensor* weight, char* error, size_t capacity) {
  return guarded(error, capacity, [&] { return at::fbgemm_pack_gemm_matrix_fp16(*weight); });
}

// input (rows, in) · packed + bias (out) → (rows, out).
extern "C" at::Tensor* fugue_fp16_affine(const at::Tensor* input, const at::Tensor* packed,
                                         const at::Tensor* bias, char* error, size_t capacity) {
  return guarded(error, capacity,
                 [&] { return at::fbgemm_linear_fp16_weight_fp32_activation(*input, *packed, *bias); });
}
