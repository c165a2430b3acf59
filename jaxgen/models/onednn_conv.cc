// NHWC convolutions through oneDNN (AMX where the CPU has it) as XLA FFI handlers: the forward, the
// backward-data and the backward-weights primitives behind jaxgen/models/onednn_conv.py's custom_vjp (jaxgen's
// opt-in `conv_backend = "onednn"`). Built on first use by onednn_conv.load() with g++ against the oneDNN 3.2
// wheels (`pip install 'jaxgen[onednn]'`) and jaxlib's FFI headers (the key of its build cache hashes this file).
// Layouts are XLA's: x [N,H,W,C], w [KH,KW,C,O] (HWIO), y [N,OH,OW,O]; padding (top, bottom, left, right) >= 0,
// strides (sh, sw) >= 1, OH = (H + top + bottom - KH) / sh + 1 (rounded down, as XLA: input rows past the last
// window get a zero gradient).
//
//   OnednnConvFwd        (x, w)  -> y    forward_training
//   OnednnConvBwdData    (dy, w) -> dx   backward_data
//   OnednnConvBwdWeights (x, dy) -> dw   backward_weights (no bias: the bias gradient stays in XLA)
//
// Inputs are f32 or bf16 (both operands the same); results f32 or bf16 (oneDNN accumulates in f32 either way).
//
//   JaxgenOnednnSetThreads(n)   the OpenMP team of every later call (n > 0; 0: OMP_NUM_THREADS's again): the
//                               calling thread's omp_set_num_threads(n) before each primitive is made or run
//                               (a step on fewer XLA CPU devices than the host split gives each device more cores)
//   JaxgenOnednnLastTeam()      the team size the last primitive ran with (0 before any; the tests read it)
//   JaxgenOnednnImpl(...)       the implementation oneDNN picks for a primitive (onednn_conv.implementations:
//                               convolutions whose kernels are oneDNN's reference code stay in XLA)
//
// Primitives are cached per (kind, dtypes, shape, padding, strides, team size: oneDNN's kernels fix their
// thread partition when made); the cache mutex covers only the
// lookup/insert, so two XLA CPU devices can run the same primitive concurrently: every primitive uses a
// user-provided scratchpad and writes reordered weights (and activations) into per-thread buffers. Weights are
// reordered from HWIO to the layout the primitive prefers (format_tag::any) on each call (the weights are small
// next to the activations).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

// GNU OpenMP's (oneDNN's runtime; libdnnl loads it). Weak: a oneDNN built on another runtime leaves them null.
extern "C" {
int omp_get_max_threads(void) __attribute__((weak));
void omp_set_num_threads(int) __attribute__((weak));
}

namespace ffi = xla::ffi;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using md = dnnl::memory::desc;

namespace {
dnnl::engine& Engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// A 64-byte aligned, growable per-thread buffer (scratchpads, reordered weights).
struct Buf {
  void* p = nullptr;
  size_t n = 0;
  void* Get(size_t bytes) {
    if (bytes > n) {
      std::free(p);
      n = (bytes + 4095) / 4096 * 4096;
      p = std::aligned_alloc(64, n);
    }
    return p;
  }
  ~Buf() { std::free(p); }
};
thread_local Buf scratch_buf, wei_buf, act_a_buf, act_b_buf;

enum Kind : int64_t { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

struct Geo {
  int64_t n, h, w, c, kh, kw, o, oh, ow, pt, pb, pl, pr, sh, sw;
  dnnl::memory::dims Src() const { return {n, c, h, w}; }
  dnnl::memory::dims Wei() const { return {o, c, kh, kw}; }
  dnnl::memory::dims Dst() const { return {n, o, oh, ow}; }
  dnnl::memory::dims Strides() const { return {sh, sw}; }
  dnnl::memory::dims PadL() const { return {pt, pl}; }
  dnnl::memory::dims PadR() const { return {pb, pr}; }  // oneDNN's output size rounds down as XLA's
  bool Valid() const {
    return n > 0 && c > 0 && o > 0 && kh > 0 && kw > 0 && pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0 && sh > 0 &&
           sw > 0 && h + pt + pb >= kh && w + pl + pr >= kw && oh == (h + pt + pb - kh) / sh + 1 &&
           ow == (w + pl + pr - kw) / sw + 1;
  }
};

struct Entry {
  dnnl::primitive prim;
  md act_a, act_b;  // the two activation descs (fwd: src, dst; bwd data: diff_dst, diff_src; bwd w: src, diff_dst)
  md wei;           // the primitive's weights (or diff_weights) desc
  md user_wei;      // HWIO
  bool reorder_wei;
  dnnl::reorder wei_reorder;  // user -> primitive (fwd, bwd data) or primitive -> user (bwd weights)
  md user_a, user_b;          // the activations as XLA holds them (NHWC)
  bool reorder_act = false;   // bwd weights on a blocked layout (BwdWeightsChosen): user -> primitive
  dnnl::reorder a_reorder, b_reorder;
  size_t scratch_bytes;
};

std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache;
std::mutex mu;
// The team OMP_NUM_THREADS gave the thread that loaded this library (JaxgenOnednnSetThreads(0) goes back to it).
const int initial_team = omp_get_max_threads != nullptr ? omp_get_max_threads() : 0;
std::atomic<int> team{0};
std::atomic<int> last_team{0};  // the team size of the last primitive run (JaxgenOnednnLastTeam: tests)

// This thread's OpenMP team for the next primitive: JaxgenOnednnSetThreads' size when set; returns its size.
int64_t Team() {
  if (omp_get_max_threads == nullptr || omp_set_num_threads == nullptr) return 0;
  int n = team.load(std::memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
  int now = omp_get_max_threads();
  last_team.store(now, std::memory_order_relaxed);
  return now;
}

dnnl::primitive_attr Attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

dnnl::convolution_forward::primitive_desc FwdPd(const Geo& g, dt in, dt out) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, md(g.Src(), in, tag::nhwc),
      md(g.Wei(), in, tag::any), md(g.Dst(), out, tag::nhwc), g.Strides(), g.PadL(), g.PadR(), Attr());
}

dnnl::convolution_backward_data::primitive_desc BwdDataPd(const Geo& g, dt in, dt out) {
  return dnnl::convolution_backward_data::primitive_desc(
      Engine(), dnnl::algorithm::convolution_direct, md(g.Src(), out, tag::nhwc), md(g.Wei(), in, tag::any),
      md(g.Dst(), in, tag::nhwc), g.Strides(), g.PadL(), g.PadR(), FwdPd(g, in, dt::f32), Attr());
}

dnnl::convolution_backward_weights::primitive_desc BwdWeightsPd(const Geo& g, dt in, dt out, tag act) {
  auto hint = dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, md(g.Src(), in, act),
      md(g.Wei(), in, tag::any), md(g.Dst(), dt::f32, act), g.Strides(), g.PadL(), g.PadR(), Attr());
  return dnnl::convolution_backward_weights::primitive_desc(
      Engine(), dnnl::algorithm::convolution_direct, md(g.Src(), in, act), md(g.Wei(), out, tag::any),
      md(g.Dst(), in, act), g.Strides(), g.PadL(), g.PadR(), hint, Attr());
}

// The backward-weights primitive: on XLA's NHWC activations, unless oneDNN's pick for them is its AVX2 direct
// kernel ("jit:avx2": no brgemm backward-weights kernel on AVX2 in oneDNN 3.2), which runs 1.2-3x faster on the
// blocked activation layout it prefers (format_tag::any; measured on AMD Zen 3, e.g. 1x256x66x66 3x3 256->256
// 77 -> 39 ms, 2 threads): then x and dy are reordered into it on each call (~0.5 ms for 4 MB).
dnnl::convolution_backward_weights::primitive_desc BwdWeightsChosen(const Geo& g, dt in, dt out) {
  auto plain = BwdWeightsPd(g, in, out, tag::nhwc);
  if (std::string(plain.impl_info_str()) != "jit:avx2") return plain;
  return BwdWeightsPd(g, in, out, tag::any);
}

std::unique_ptr<Entry> Build(Kind kind, const Geo& g, dt in, dt out) {
  auto e = std::make_unique<Entry>();
  if (kind == kFwd) {
    auto pd = FwdPd(g, in, out);
    e->prim = dnnl::convolution_forward(pd);
    e->act_a = pd.src_desc();
    e->act_b = pd.dst_desc();
    e->wei = pd.weights_desc();
    e->scratch_bytes = pd.scratchpad_desc().get_size();
    e->user_wei = md(g.Wei(), in, tag::hwio);
  } else if (kind == kBwdData) {
    auto pd = BwdDataPd(g, in, out);
    e->prim = dnnl::convolution_backward_data(pd);
    e->act_a = pd.diff_dst_desc();
    e->act_b = pd.diff_src_desc();
    e->wei = pd.weights_desc();
    e->scratch_bytes = pd.scratchpad_desc().get_size();
    e->user_wei = md(g.Wei(), in, tag::hwio);
  } else {
    auto pd = BwdWeightsChosen(g, in, out);
    e->prim = dnnl::convolution_backward_weights(pd);
    e->act_a = pd.src_desc();
    e->act_b = pd.diff_dst_desc();
    e->wei = pd.diff_weights_desc();
    e->scratch_bytes = pd.scratchpad_desc().get_size();
    e->user_wei = md(g.Wei(), out, tag::hwio);
    e->user_a = md(g.Src(), in, tag::nhwc);
    e->user_b = md(g.Dst(), in, tag::nhwc);
    e->reorder_act = e->act_a != e->user_a || e->act_b != e->user_b;
    if (e->reorder_act) {
      auto apd = dnnl::reorder::primitive_desc(Engine(), e->user_a, Engine(), e->act_a, Attr());
      auto bpd = dnnl::reorder::primitive_desc(Engine(), e->user_b, Engine(), e->act_b, Attr());
      e->a_reorder = dnnl::reorder(apd);
      e->b_reorder = dnnl::reorder(bpd);
      e->scratch_bytes = std::max({e->scratch_bytes, apd.scratchpad_desc().get_size(),
                                   bpd.scratchpad_desc().get_size()});
    }
  }
  e->reorder_wei = e->wei != e->user_wei;
  if (e->reorder_wei) {
    auto a = Attr();
    auto rpd = kind == kBwdWeights ? dnnl::reorder::primitive_desc(Engine(), e->wei, Engine(), e->user_wei, a)
                                   : dnnl::reorder::primitive_desc(Engine(), e->user_wei, Engine(), e->wei, a);
    e->wei_reorder = dnnl::reorder(rpd);
    e->scratch_bytes = std::max(e->scratch_bytes, rpd.scratchpad_desc().get_size());
  }
  return e;
}

bool ToDnnl(ffi::DataType t, dt* out) {
  if (t == ffi::DataType::F32) { *out = dt::f32; return true; }
  if (t == ffi::DataType::BF16) { *out = dt::bf16; return true; }
  return false;
}

// Runs `kind` on (a, b) -> r. fwd: a=x, b=w, r=y. bwd data: a=dy, b=w, r=dx. bwd weights: a=x, b=dy, r=dw.
ffi::Error Run(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> r, int64_t pt, int64_t pb,
               int64_t pl, int64_t pr, int64_t sh, int64_t sw) {
  dt in, out;
  if (a.element_type() != b.element_type() || !ToDnnl(a.element_type(), &in) || !ToDnnl(r->element_type(), &out))
    return ffi::Error::InvalidArgument("onednn_conv: operands must both be f32 or bf16, the result f32 or bf16");
  auto ad = a.dimensions(), bd = b.dimensions(), rd = r->dimensions();
  if (ad.size() != 4 || bd.size() != 4 || rd.size() != 4)
    return ffi::Error::InvalidArgument("onednn_conv: rank-4 NHWC / HWIO operands expected");
  Geo g;
  if (kind == kFwd) {  // x [N,H,W,C], w [KH,KW,C,O], y [N,OH,OW,O]
    g = {ad[0], ad[1], ad[2], ad[3], bd[0], bd[1], bd[3], rd[1], rd[2], pt, pb, pl, pr, sh, sw};
    if (bd[2] != ad[3] || rd[0] != ad[0] || rd[3] != bd[3]) g.n = -1;
  } else if (kind == kBwdData) {  // dy [N,OH,OW,O], w [KH,KW,C,O], dx [N,H,W,C]
    g = {rd[0], rd[1], rd[2], rd[3], bd[0], bd[1], bd[3], ad[1], ad[2], pt, pb, pl, pr, sh, sw};
    if (bd[2] != rd[3] || ad[0] != rd[0] || ad[3] != bd[3]) g.n = -1;
  } else {  // x [N,H,W,C], dy [N,OH,OW,O], dw [KH,KW,C,O]
    g = {ad[0], ad[1], ad[2], ad[3], rd[0], rd[1], bd[3], bd[1], bd[2], pt, pb, pl, pr, sh, sw};
    if (rd[2] != ad[3] || bd[0] != ad[0] || rd[3] != bd[3]) g.n = -1;
  }
  if (!g.Valid()) return ffi::Error::InvalidArgument("onednn_conv: shapes, padding and strides do not fit a conv");
  std::vector<int64_t> key = {kind, static_cast<int64_t>(in), static_cast<int64_t>(out), g.n, g.h, g.w, g.c, g.kh,
                              g.kw, g.o, g.pt, g.pb, g.pl, g.pr, g.sh, g.sw, Team()};
  Entry* e;
  try {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, Build(kind, g, in, out)).first;
    e = it->second.get();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("onednn_conv: primitive creation failed: ") + err.what());
  }
  try {
    dnnl::stream s(Engine());
    dnnl::memory scratch(md({static_cast<int64_t>(std::max<size_t>(e->scratch_bytes, 1))}, dt::u8, tag::a), Engine(),
                         scratch_buf.Get(e->scratch_bytes + 64));
    void* wei_ptr = kind == kFwd || kind == kBwdData ? b.untyped_data() : r->untyped_data();
    dnnl::memory user_w(e->user_wei, Engine(), wei_ptr);
    dnnl::memory wei_m = user_w;
    if (e->reorder_wei) wei_m = dnnl::memory(e->wei, Engine(), wei_buf.Get(e->wei.get_size() + 64));
    if (e->reorder_wei && kind != kBwdWeights)
      e->wei_reorder.execute(s, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, wei_m}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (kind == kFwd) {
      dnnl::memory src(e->act_a, Engine(), a.untyped_data()), dst(e->act_b, Engine(), r->untyped_data());
      e->prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst},
                          {DNNL_ARG_SCRATCHPAD, scratch}});
    } else if (kind == kBwdData) {
      dnnl::memory ddst(e->act_a, Engine(), a.untyped_data()), dsrc(e->act_b, Engine(), r->untyped_data());
      e->prim.execute(s, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DIFF_SRC, dsrc},
                          {DNNL_ARG_SCRATCHPAD, scratch}});
    } else {
      dnnl::memory src(e->act_a, Engine(), a.untyped_data()), ddst(e->act_b, Engine(), b.untyped_data());
      if (e->reorder_act) {
        dnnl::memory user_src(e->user_a, Engine(), a.untyped_data());
        dnnl::memory user_ddst(e->user_b, Engine(), b.untyped_data());
        src = dnnl::memory(e->act_a, Engine(), act_a_buf.Get(e->act_a.get_size() + 64));
        ddst = dnnl::memory(e->act_b, Engine(), act_b_buf.Get(e->act_b.get_size() + 64));
        e->a_reorder.execute(s, {{DNNL_ARG_FROM, user_src}, {DNNL_ARG_TO, src}, {DNNL_ARG_SCRATCHPAD, scratch}});
        e->b_reorder.execute(s, {{DNNL_ARG_FROM, user_ddst}, {DNNL_ARG_TO, ddst}, {DNNL_ARG_SCRATCHPAD, scratch}});
      }
      e->prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, wei_m},
                          {DNNL_ARG_SCRATCHPAD, scratch}});
      if (e->reorder_wei)
        e->wei_reorder.execute(s, {{DNNL_ARG_FROM, wei_m}, {DNNL_ARG_TO, user_w}, {DNNL_ARG_SCRATCHPAD, scratch}});
    }
    s.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("onednn_conv: execution failed: ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error Fwd(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y, int64_t pt, int64_t pb, int64_t pl,
               int64_t pr, int64_t sh, int64_t sw) {
  return Run(kFwd, x, w, y, pt, pb, pl, pr, sh, sw);
}
ffi::Error BwdData(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx, int64_t pt, int64_t pb,
                   int64_t pl, int64_t pr, int64_t sh, int64_t sw) {
  return Run(kBwdData, dy, w, dx, pt, pb, pl, pr, sh, sw);
}
ffi::Error BwdWeights(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw, int64_t pt, int64_t pb,
                      int64_t pl, int64_t pr, int64_t sh, int64_t sw) {
  return Run(kBwdWeights, x, dy, dw, pt, pb, pl, pr, sh, sw);
}
}  // namespace

#define ONEDNN_CONV_BINDING                                                                           \
  ffi::Ffi::Bind()                                                                                    \
      .Arg<ffi::AnyBuffer>()                                                                          \
      .Arg<ffi::AnyBuffer>()                                                                          \
      .Ret<ffi::AnyBuffer>()                                                                          \
      .Attr<int64_t>("pt")                                                                            \
      .Attr<int64_t>("pb")                                                                            \
      .Attr<int64_t>("pl")                                                                            \
      .Attr<int64_t>("pr")                                                                            \
      .Attr<int64_t>("sh")                                                                            \
      .Attr<int64_t>("sw")

XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvFwd, Fwd, ONEDNN_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBwdData, BwdData, ONEDNN_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnConvBwdWeights, BwdWeights, ONEDNN_CONV_BINDING);

extern "C" __attribute__((visibility("default"))) void JaxgenOnednnSetThreads(int n) {
  team.store(n > 0 ? n : initial_team, std::memory_order_relaxed);
}

extern "C" __attribute__((visibility("default"))) int JaxgenOnednnLastTeam() {
  return last_team.load(std::memory_order_relaxed);
}

// The implementation oneDNN picks for `kind` (0 fwd, 1 bwd data, 2 bwd weights) of the convolution with geometry
// geo = {n, h, w, c, kh, kw, o, oh, ow, pt, pb, pl, pr, sh, sw}, operands bf16 when `bf16` (results f32), as
// ONEDNN_VERBOSE names it ("brgconv:avx2", "ref:any"...; "/blocked" appended when the backward-weights primitive
// takes its activations reordered, BwdWeightsChosen), written NUL-terminated into buf[len]; returns its
// length, or -1 when no primitive can be made (an invalid geometry, or none for these types on this CPU).
extern "C" __attribute__((visibility("default"))) int JaxgenOnednnImpl(int kind, int bf16, const int64_t* geo,
                                                                       char* buf, int len) {
  Geo g = {geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8],
           geo[9], geo[10], geo[11], geo[12], geo[13], geo[14]};
  if (!g.Valid() || len < 1) return -1;
  dt in = bf16 ? dt::bf16 : dt::f32;
  std::string name;
  try {
    Team();
    if (kind == kFwd) name = FwdPd(g, in, dt::f32).impl_info_str();
    else if (kind == kBwdData) name = BwdDataPd(g, in, dt::f32).impl_info_str();
    else {
      auto pd = BwdWeightsChosen(g, in, dt::f32);
      name = pd.impl_info_str();
      if (pd.src_desc() != md(g.Src(), in, tag::nhwc)) name += "/blocked";
    }
  } catch (const dnnl::error&) {
    return -1;
  }
  int n = static_cast<int>(std::min<size_t>(name.size(), static_cast<size_t>(len - 1)));
  std::copy(name.begin(), name.begin() + n, buf);
  buf[n] = '\0';
  return n;
}
