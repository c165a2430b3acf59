// A bf16 NHWC stride-1 convolution through oneDNN (AMX where the CPU has it) as an XLA FFI handler: the probe
// behind benchmarks/RESULTS.md "bf16 on AMX from JAX". Built by build.sh; measured by probe.py. Forward only.
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

namespace {
dnnl::engine& Engine() { static dnnl::engine e(dnnl::engine::kind::cpu, 0); return e; }

struct Prim {
  dnnl::convolution_forward conv;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::memory::desc user_w;
};
std::map<std::vector<int64_t>, Prim> cache;
std::mutex mu;

ffi::Error Impl(ffi::Buffer<ffi::BF16> x, ffi::Buffer<ffi::BF16> w, ffi::ResultBuffer<ffi::F32> y, int64_t pad) {
  auto xd = x.dimensions();  // N H W C
  auto wd = w.dimensions();  // KH KW CI CO
  auto yd = y->dimensions(); // N OH OW CO
  std::vector<int64_t> key = {xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[2], wd[3], pad};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it == cache.end()) {
    dnnl::memory::dims src = {xd[0], xd[3], xd[1], xd[2]}, wei = {wd[3], wd[2], wd[0], wd[1]},
                       dst = {yd[0], yd[3], yd[1], yd[2]};
    auto src_md = dnnl::memory::desc(src, dt::bf16, tag::nhwc);
    auto wei_any = dnnl::memory::desc(wei, dt::bf16, tag::any);
    auto dst_md = dnnl::memory::desc(dst, dt::f32, tag::nhwc);
    auto pd = dnnl::convolution_forward::primitive_desc(
        Engine(), dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md, wei_any, dst_md,
        {1, 1}, {pad, pad}, {pad, pad});
    it = cache.emplace(key, Prim{dnnl::convolution_forward(pd), pd, dnnl::memory::desc(wei, dt::bf16, tag::hwio)}).first;
  }
  Prim& p = it->second;
  dnnl::stream s(Engine());
  dnnl::memory src_m(p.pd.src_desc(), Engine(), x.untyped_data());
  dnnl::memory dst_m(p.pd.dst_desc(), Engine(), y->untyped_data());
  dnnl::memory user_w(p.user_w, Engine(), w.untyped_data());
  dnnl::memory wei_m = user_w;
  if (p.pd.weights_desc() != p.user_w) {
    wei_m = dnnl::memory(p.pd.weights_desc(), Engine());
    dnnl::reorder(user_w, wei_m).execute(s, user_w, wei_m);
  }
  p.conv.execute(s, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst_m}});
  s.wait();
  return ffi::Error::Success();
}
}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OnednnBf16Conv, Impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pad"));
