// Op schemas of the `ntm_fast` namespace (declared once; CPU and CUDA implementations are
// registered in csrc/cpu/<op>.cpp, csrc/cpu/sequence_*.cpp, csrc/cuda/*_binding.cpp), the
// shared argument checks, and the Python module `ntm_fast._C` (importing it registers the ops).
#include <Python.h>

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <atomic>
#include <limits>
#include <sstream>

#include "common.h"

namespace ntm_fast {

namespace {
std::atomic<bool> g_poison{false};
}  // namespace

bool poison_enabled() { return g_poison.load(std::memory_order_relaxed); }
void set_poison(bool enabled) { g_poison.store(enabled, std::memory_order_relaxed); }

at::Tensor new_output(c10::IntArrayRef sizes, const c10::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (poison_enabled()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

std::string describe(const at::Tensor& t) {
  std::ostringstream os;
  os << "shape " << t.sizes() << ", dtype " << t.scalar_type() << ", device " << t.device();
  return os.str();
}

void check_arg(const char* op, const char* name, const at::Tensor& t, const char* spec,
               std::initializer_list<int64_t> sizes, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK(t.defined(), op, ": ", name, ": expected a tensor, got None");
  const auto st = t.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16,
                   op, ": ", name,
                   ": expected a floating dtype (float16, bfloat16, float32 or float64), got ",
                   describe(t));
  bool ok = t.dim() == static_cast<int64_t>(sizes.size());
  if (ok) {
    int64_t d = 0;
    for (int64_t want : sizes) {
      const int64_t got = t.size(d++);
      ok = ok && (want < 0 ? got >= 1 : got == want);
    }
  }
  if (!ok) {
    std::ostringstream want;
    want << "(";
    int64_t d = 0;
    for (int64_t s : sizes) {
      want << (d++ ? ", " : "");
      if (s < 0) want << "*"; else want << s;
    }
    want << ")";
    TORCH_CHECK_VALUE(false, op, ": ", name, ": expected shape ", spec, " = ", want.str(),
                      ", got ", describe(t));
  }
  TORCH_CHECK_VALUE(t.device() == ref.device(), op, ": ", name, ": expected device ",
                    ref.device(), " (the device of ", ref_name, "), got ", describe(t));
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), op, ": ", name, ": expected dtype ",
                   ref.scalar_type(), " (the dtype of ", ref_name, "), got ", describe(t));
}

int64_t check_shift_count(const char* op, const at::Tensor& shift, int64_t N) {
  const int64_t S = shift.size(-1);
  TORCH_CHECK_VALUE(S % 2 == 1 && S <= N, op,
                    ": shift: expected an odd number of shifts S (offsets -k..k, S = 2k+1) with "
                    "1 <= S <= N = ",
                    N, ", got ", describe(shift));
  return (S - 1) / 2;
}

}  // namespace ntm_fast

TORCH_LIBRARY(ntm_fast, m) {
  // Shapes: memory (B, N, W); key, erase, add (B, H, W); weightings (B, H, N);
  // beta, gate, gamma (B, H); shift (B, H, S). Backward ops return one gradient per input.
  m.def("content_address_fwd(Tensor memory, Tensor key, Tensor beta) -> Tensor");
  m.def(
      "content_address_bwd(Tensor grad, Tensor memory, Tensor key, Tensor beta)"
      " -> (Tensor, Tensor, Tensor)");
  m.def("interpolate_fwd(Tensor w_content, Tensor w_prev, Tensor gate) -> Tensor");
  m.def(
      "interpolate_bwd(Tensor grad, Tensor w_content, Tensor w_prev, Tensor gate)"
      " -> (Tensor, Tensor, Tensor)");
  m.def("shift_convolve_fwd(Tensor w, Tensor shift) -> Tensor");
  m.def("shift_convolve_bwd(Tensor grad, Tensor w, Tensor shift) -> (Tensor, Tensor)");
  m.def("sharpen_fwd(Tensor w, Tensor gamma) -> Tensor");
  m.def("sharpen_bwd(Tensor grad, Tensor w, Tensor gamma) -> (Tensor, Tensor)");
  m.def(
      "address_fwd(Tensor memory, Tensor key, Tensor beta, Tensor gate, Tensor shift,"
      " Tensor gamma, Tensor w_prev) -> Tensor");
  m.def(
      "address_bwd(Tensor grad, Tensor memory, Tensor key, Tensor beta, Tensor gate,"
      " Tensor shift, Tensor gamma, Tensor w_prev)"
      " -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("read_fwd(Tensor memory, Tensor w) -> Tensor");
  m.def("read_bwd(Tensor grad, Tensor memory, Tensor w) -> (Tensor, Tensor)");
  m.def("write_fwd(Tensor memory, Tensor w, Tensor erase, Tensor add) -> Tensor");
  m.def(
      "write_bwd(Tensor grad, Tensor memory, Tensor w, Tensor erase, Tensor add)"
      " -> (Tensor, Tensor, Tensor, Tensor)");
  // The whole sequence in one call each way (csrc/sequence_config.h: argument order, sizes
  // and what `save` adds to the outputs for the backward); CPU and CUDA implementations.
  m.def(
      "sequence_fwd(Tensor x, Tensor memory, Tensor reads, Tensor weightings, Tensor[] state,"
      " Tensor[] params, Tensor? lengths, int read_heads, int shift_range, bool uniform_shift,"
      " bool lstm, bool save) -> Tensor[]");
  m.def(
      "sequence_bwd(Tensor?[] grads, Tensor x, Tensor[] state, Tensor[] params, Tensor[] saved,"
      " Tensor? lengths, int read_heads, int shift_range, bool uniform_shift, bool lstm)"
      " -> Tensor[]");
}

// ---- the Python module ntm_fast._C -----------------------------------------------------------

namespace {

PyObject* py_set_poison(PyObject* /*self*/, PyObject* arg) {
  const int enabled = PyObject_IsTrue(arg);
  if (enabled < 0) return nullptr;
  ntm_fast::set_poison(enabled != 0);
  Py_RETURN_NONE;
}

PyObject* py_poison_enabled(PyObject* /*self*/, PyObject* /*unused*/) {
  return PyBool_FromLong(ntm_fast::poison_enabled() ? 1 : 0);
}

PyObject* py_built_with_cuda(PyObject* /*self*/, PyObject* /*unused*/) {
#ifdef NTM_FAST_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

PyMethodDef methods[] = {
    {"set_poison", py_set_poison, METH_O, "Fill new op outputs with NaN (tests)."},
    {"poison_enabled", py_poison_enabled, METH_NOARGS, "Whether outputs are NaN-poisoned."},
    {"built_with_cuda", py_built_with_cuda, METH_NOARGS,
     "Whether the CUDA kernels were compiled into this extension."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C",
                          "ntm_fast native ops (registered as torch.ops.ntm_fast.*)", -1,
                          methods};

}  // namespace

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
