// The discretization plugins (zoh, bilinear, dirac = forward Euler,
// backward_euler, async): closed forms in long double at sample points
// (including small |z| down to 1e-12 and z = 0), derivatives against finite
// differences, both complex dtypes, suffixes, the family extensions
// (ssm/ext/disc_gbt.h, ssm/ext/disc_exp.h), options, nullable outputs and
// error messages.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/ext/disc_exp.h>
#include <ssm/ext/disc_gbt.h>
#include <ssm/sdk.hpp>

#include <cmath>
#include <complex>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "registry.hpp"

namespace {

using cd = std::complex<double>;
using cld = std::complex<long double>;

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

struct Outputs {
  std::vector<cd> a, beta, da, dbeta;
};

// Evaluates a discretization on complex128 points through the plugin ABI.
Outputs eval128(const ssmhost::DiscObject& disc, std::vector<cd> z) {
  const int64_t n = static_cast<int64_t>(z.size());
  Outputs o{std::vector<cd>(z.size()), std::vector<cd>(z.size()), std::vector<cd>(z.size()),
            std::vector<cd>(z.size())};
  ssm::View vz(z.data(), {n}), va(o.a.data(), {n}), vb(o.beta.data(), {n}), vda(o.da.data(), {n}),
      vdb(o.dbeta.data(), {n});
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
  disc.eval(&ctx, vz.get(), va.get(), vb.get(), vda.get(), vdb.get());
  return o;
}

// The same on complex64 (inputs rounded to float), widened back to double.
Outputs eval64(const ssmhost::DiscObject& disc, const std::vector<cd>& z) {
  const int64_t n = static_cast<int64_t>(z.size());
  using cf = std::complex<float>;
  std::vector<cf> zf(z.begin(), z.end()), a(z.size()), beta(z.size()), da(z.size()), dbeta(z.size());
  ssm::View vz(zf.data(), {n}), va(a.data(), {n}), vb(beta.data(), {n}), vda(da.data(), {n}),
      vdb(dbeta.data(), {n});
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
  disc.eval(&ctx, vz.get(), va.get(), vb.get(), vda.get(), vdb.get());
  auto widen = [](const std::vector<cf>& v) { return std::vector<cd>(v.begin(), v.end()); };
  return {widen(a), widen(beta), widen(da), widen(dbeta)};
}

// Reference ZOH in long double: Taylor series of phi and phi' near 0 (no
// cancellation at all), the closed forms elsewhere.
cld ref_phi(cld z) {
  if (std::abs(z) > 1) return (std::exp(z) - 1.0L) / z;
  cld sum = 0, term = 1;  // term = z^k / (k+1)!
  for (int k = 0; k < 30; ++k) {
    sum += term;
    term *= z / static_cast<long double>(k + 2);
  }
  return sum;
}
cld ref_dphi(cld z) {
  if (std::abs(z) > 1) return (std::exp(z) - ref_phi(z)) / z;
  cld sum = 0, power = 1;  // sum_k (k+1) z^k / (k+2)!
  long double fact = 2;    // (k+2)!
  for (int k = 0; k < 30; ++k) {
    sum += static_cast<long double>(k + 1) * power / fact;
    power *= z;
    fact *= static_cast<long double>(k + 3);
  }
  return sum;
}

// Relative to |want| (or 1 when |want| < 1): an accuracy bound that stays meaningful at 0.
void check_close(const std::string& what, cd got, cld want, double tol) {
  const double want_d_re = static_cast<double>(want.real()), want_d_im = static_cast<double>(want.imag());
  const cd w(want_d_re, want_d_im);
  const double err = std::abs(got - w) / std::max(1.0, std::abs(w));
  INFO(what << ": got " << got << ", want " << w << ", relative error " << err);
  CHECK(err <= tol);
}

// Sample points: stable, oscillating, small (in and just outside the series
// region), exactly 0, and (for zoh) far in the left half plane.
const std::vector<cd> kPoints = {{-0.5, 0.0},   {-0.5, 3.14159}, {-0.01, -25.0}, {0.3, 0.7},      {-2.0, 1.0},
                                 {1e-4, 0.0},   {0.0, 1e-4},     {-3e-4, 5e-4},  {9e-4, -2e-4},   {1.2e-3, 0.0},
                                 {-6e-4, 9e-4}, {1e-9, -1e-9},   {0.0, 0.0},     {-1e-3, 1e-12},  {-1.5, -0.2}};

// Checks a' and beta' against central differences of a and beta: the loss
// sum_k Re(conj(p_k) f(z_k)) has d/dRe z_k = Re(conj(p_k) f'(z_k)) and
// d/dIm z_k = Re(conj(p_k) i f'(z_k)), which together fix f' completely.
void check_derivatives(const std::string& name, const std::vector<cd>& points, const ssmhost::KV& config = {}) {
  auto disc = registry().create_disc(name, config);
  const size_t n = points.size();
  const std::vector<double> pr = ssm_test::random_vector(n, 7), pi = ssm_test::random_vector(n, 8);
  std::vector<cd> probe(n);
  for (size_t k = 0; k < n; ++k) probe[k] = {pr[k], pi[k]};

  std::vector<double> w(2 * n);  // Re z then Im z
  for (size_t k = 0; k < n; ++k) {
    w[k] = points[k].real();
    w[n + k] = points[k].imag();
  }
  const Outputs at = eval128(*disc, points);

  for (int which = 0; which < 2; ++which) {  // 0: a, 1: beta
    const std::vector<cd>& deriv = which == 0 ? at.da : at.dbeta;
    std::vector<double> analytic(2 * n);
    for (size_t k = 0; k < n; ++k) {
      analytic[k] = (std::conj(probe[k]) * deriv[k]).real();
      analytic[n + k] = (std::conj(probe[k]) * cd(0, 1) * deriv[k]).real();
    }
    auto loss = [&] {
      std::vector<cd> z(n);
      for (size_t k = 0; k < n; ++k) z[k] = {w[k], w[n + k]};
      const Outputs o = eval128(*disc, z);
      const std::vector<cd>& f = which == 0 ? o.a : o.beta;
      double s = 0;
      for (size_t k = 0; k < n; ++k) s += (std::conj(probe[k]) * f[k]).real();
      return s;
    };
    ssm_test::check_gradient(name + (which == 0 ? " da" : " dbeta"), w, analytic, loss, 1e-6, 1e-6);
  }
}

// a, beta, a', beta' at one point, in long double.
struct RefPoint {
  cld a, beta, da, dbeta;
};

// The generalized bilinear family (docs/math.md §0), straight from its formula.
RefPoint ref_gbt(cld z, long double alpha) {
  const cld w = 1.0L - alpha * z;
  return {(1.0L + (1.0L - alpha) * z) / w, 1.0L / w, 1.0L / (w * w), alpha / (w * w)};
}
// The exponential family: a = e^{tau z}, beta = phi(z) (not tau-scaled).
RefPoint ref_exp(cld z, long double tau) {
  return {std::exp(tau * z), ref_phi(z), tau * std::exp(tau * z), ref_dphi(z)};
}

// Every scheme, with the options it is created with and its closed form
// written out on its own (not through the family formulas the plugins share).
struct Scheme {
  std::string name;
  ssmhost::KV config;
  std::function<RefPoint(cld)> ref;
};
const std::vector<Scheme>& schemes() {
  static const std::vector<Scheme> all = {
      {"zoh", {}, [](cld z) { return RefPoint{std::exp(z), ref_phi(z), std::exp(z), ref_dphi(z)}; }},
      {"bilinear", {}, [](cld z) {
         const cld w = 1.0L - z / 2.0L;
         return RefPoint{(1.0L + z / 2.0L) / w, 1.0L / w, 1.0L / (w * w), 0.5L / (w * w)};
       }},
      {"dirac", {}, [](cld z) { return RefPoint{1.0L + z, 1.0L, 1.0L, 0.0L}; }},
      {"backward_euler", {}, [](cld z) {
         const cld w = 1.0L - z;
         return RefPoint{1.0L / w, 1.0L / w, 1.0L / (w * w), 1.0L / (w * w)};
       }},
      // tau = 0.1 (the default) as the plugin parses it: the double nearest 0.1.
      {"async", {}, [](cld z) {
         const long double tau = 0.1;
         return RefPoint{std::exp(tau * z), ref_phi(z), tau * std::exp(tau * z), ref_dphi(z)};
       }},
      {"async", {{"tau", "2.5"}}, [](cld z) {
         return RefPoint{std::exp(2.5L * z), ref_phi(z), 2.5L * std::exp(2.5L * z), ref_dphi(z)};
       }},
  };
  return all;
}
std::string label(const Scheme& s) {
  std::string out = s.name;
  for (const auto& kv : s.config) out += " " + kv.first + "=" + kv.second;
  return out;
}

// Checks a plugin against a reference at `points`, complex128 and complex64
// (the complex64 input rounded to float first, the reference taken there).
// tol: for a, beta, a' in complex128; tol_dbeta for beta' (ZOH's closed form
// above the series threshold loses about eps/|z|); 2e-7 for complex64.
void check_scheme(const Scheme& s, const std::vector<cd>& points, double tol, double tol_dbeta) {
  auto disc = registry().create_disc(s.name, s.config);
  const Outputs o = eval128(*disc, points);
  const Outputs f = eval64(*disc, points);
  for (size_t k = 0; k < points.size(); ++k) {
    INFO(label(s) << " at z = " << points[k]);
    const RefPoint r = s.ref(cld(points[k].real(), points[k].imag()));
    check_close("a", o.a[k], r.a, tol);
    check_close("beta", o.beta[k], r.beta, tol);
    check_close("da", o.da[k], r.da, tol);
    check_close("dbeta", o.dbeta[k], r.dbeta, tol_dbeta);
    const std::complex<float> zf(points[k]);
    const RefPoint r32 = s.ref(cld(zf.real(), zf.imag()));
    check_close("a (complex64)", f.a[k], r32.a, 2e-7);
    check_close("beta (complex64)", f.beta[k], r32.beta, 2e-7);
    check_close("da (complex64)", f.da[k], r32.da, 2e-7);
    check_close("dbeta (complex64)", f.dbeta[k], r32.dbeta, 2e-7);
  }
}

const std::vector<std::string> kAllNames = {"zoh", "bilinear", "dirac", "backward_euler", "async"};

}  // namespace

TEST_CASE("plugins are found with their suffixes", "[disc]") {
  const std::vector<std::pair<std::string, std::string>> want = {
      {"zoh", "z"}, {"bilinear", "b"}, {"dirac", "e"}, {"backward_euler", "i"}, {"async", "a"}};
  for (const auto& [name, suffix] : want) {
    INFO(name);
    auto disc = registry().create_disc(name, {});
    CHECK(disc->suffix() == suffix);
    // s4d + the suffix resolves to s4d with this scheme.
    auto [layer, disc_name] = registry().resolve_layer("s4d" + suffix);
    REQUIRE(layer != nullptr);
    CHECK(layer->id == "s4d");
    CHECK(disc_name == name);
  }
}

TEST_CASE("every scheme matches its closed form in long double, complex128 and complex64", "[disc][closed]") {
  for (const Scheme& s : schemes()) check_scheme(s, kPoints, 1e-14, 1e-12);
}

TEST_CASE("every scheme is stable near z = 0, down to |z| = 1e-12", "[disc][small]") {
  // |z| from 1e-12 to 1e-2 in eight directions, both sides of zoh's series
  // threshold (1e-3). The direct formulas would cancel: (e^z - 1)/z at
  // |z| = 1e-12 keeps about 4 digits, (e^z - phi)/z none at all.
  std::vector<cd> tiny, near;
  for (double r : {1e-12, 3e-11, 1e-9, 1e-7, 1e-6})
    for (int k = 0; k < 8; ++k) tiny.push_back(std::polar(r, 0.3 + k * 0.785398));
  for (double r : {1e-5, 1e-4, 9.99e-4, 1.001e-3, 3e-3, 1e-2})
    for (int k = 0; k < 8; ++k) near.push_back(std::polar(r, 0.3 + k * 0.785398));
  for (const Scheme& s : schemes()) {
    // Below 1e-6 every output is within a few ulp of its exact value.
    check_scheme(s, tiny, 1e-15, 1e-15);
    // The series' truncation (< 1e-14 at the threshold) and, just above it,
    // beta' = (e^z - phi)/z's eps/|z| loss (< 3e-13) bound the rest.
    check_scheme(s, near, 1e-14, 1e-12);
  }
}

TEST_CASE("every scheme at z = 0 is exact", "[disc][small]") {
  const std::vector<std::pair<Scheme, RefPoint>> want = {
      {schemes()[0], {1, 1, 1, 0.5L}}, {schemes()[1], {1, 1, 1, 0.5L}}, {schemes()[2], {1, 1, 1, 0}},
      {schemes()[3], {1, 1, 1, 1}},    {schemes()[4], {1, 1, 0.1L, 0.5L}}, {schemes()[5], {1, 1, 2.5L, 0.5L}}};
  for (const auto& [s, r] : want) {
    INFO(label(s));
    auto disc = registry().create_disc(s.name, s.config);
    const Outputs o = eval128(*disc, {cd(0, 0)});
    auto d = [](cld v) { return cd(static_cast<double>(v.real()), static_cast<double>(v.imag())); };
    CHECK(o.a[0] == d(r.a));
    CHECK(o.beta[0] == d(r.beta));
    CHECK(o.da[0] == d(r.da));
    CHECK(o.dbeta[0] == d(r.dbeta));
  }
}

TEST_CASE("forward Euler is exact: a = 1 + z, beta = 1, a' = 1, beta' = 0", "[disc][dirac]") {
  auto disc = registry().create_disc("dirac", {});
  const Outputs o = eval128(*disc, kPoints);
  for (size_t k = 0; k < kPoints.size(); ++k) {
    INFO("z = " << kPoints[k]);
    CHECK(o.a[k] == 1.0 + kPoints[k]);
    CHECK(o.beta[k] == cd(1, 0));
    CHECK(o.da[k] == cd(1, 0));
    CHECK(o.dbeta[k] == cd(0, 0));
  }
}

TEST_CASE("family extensions: gbt alpha and exp tau, present on their members only", "[disc][ext]") {
  struct Want {
    std::string name;
    ssmhost::KV config;
    double alpha;  // < 0: no gbt extension
    double tau;    // <= 0: no exp extension
  };
  const std::vector<Want> want = {{"zoh", {}, -1, 1.0},          {"bilinear", {}, 0.5, 0},
                                  {"dirac", {}, 0.0, 0},         {"backward_euler", {}, 1.0, 0},
                                  {"async", {}, -1, 0.1},        {"async", {{"tau", "2.5"}}, -1, 2.5},
                                  {"async", {{"tau", "1e-3"}}, -1, 1e-3}};
  for (const Want& w : want) {
    INFO(w.name << (w.config.empty() ? "" : " tau=" + w.config.at("tau")));
    auto disc = registry().create_disc(w.name, w.config);
    const auto* gbt = static_cast<const ssm_disc_gbt*>(disc->extension(SSM_EXT_DISC_GBT));
    const auto* ex = static_cast<const ssm_disc_exp*>(disc->extension(SSM_EXT_DISC_EXP));
    CHECK(disc->extension("ssm.disc.unknown/1") == nullptr);
    CHECK(disc->extension("ssm.disc.gbt/2") == nullptr);  // another revision is another extension
    if (w.alpha < 0) {
      CHECK(gbt == nullptr);
    } else {
      REQUIRE(gbt != nullptr);
      CHECK(gbt->struct_size == sizeof(ssm_disc_gbt));
      CHECK(gbt->alpha == w.alpha);
    }
    if (w.tau <= 0) {
      CHECK(ex == nullptr);
    } else {
      REQUIRE(ex != nullptr);
      CHECK(ex->struct_size == sizeof(ssm_disc_exp));
      CHECK(ex->tau == w.tau);
    }
    // What the extension declares is what eval computes: the family's
    // formula with the declared parameter, in long double.
    const Outputs o = eval128(*disc, kPoints);
    for (size_t k = 0; k < kPoints.size(); ++k) {
      INFO("z = " << kPoints[k]);
      const cld z(kPoints[k].real(), kPoints[k].imag());
      const RefPoint r = gbt ? ref_gbt(z, gbt->alpha) : ref_exp(z, ex->tau);
      check_close("a", o.a[k], r.a, 1e-14);
      check_close("beta", o.beta[k], r.beta, 1e-14);
      check_close("da", o.da[k], r.da, 1e-14);
      check_close("dbeta", o.dbeta[k], r.dbeta, 1e-12);
    }
  }
}

TEST_CASE("async's tau must be a positive, finite number; the message names 'tau'", "[disc][async][errors]") {
  for (const char* bad : {"0", "-0", "-0.1", "-2", "-inf"}) {
    INFO("tau = " << bad);
    CHECK_THROWS_WITH(registry().create_disc("async", {{"tau", bad}}),
                      Catch::Contains("'tau'") && Catch::Contains("> 0") && Catch::Contains(bad));
  }
  CHECK_THROWS_WITH(registry().create_disc("async", {{"tau", "fast"}}),
                    Catch::Contains("'tau'") && Catch::Contains("number") && Catch::Contains("fast"));
  CHECK_THROWS_WITH(registry().create_disc("async", {{"tau", "inf"}}),
                    Catch::Contains("'tau'") && Catch::Contains("finite"));
  CHECK_NOTHROW(registry().create_disc("async", {{"tau", "1"}}));
}

TEST_CASE("async with tau = 1 is zoh, bit for bit", "[disc][async]") {
  auto async = registry().create_disc("async", {{"tau", "1"}});
  auto zoh = registry().create_disc("zoh", {});
  const Outputs a = eval128(*async, kPoints), z = eval128(*zoh, kPoints);
  CHECK(a.a == z.a);
  CHECK(a.beta == z.beta);
  CHECK(a.da == z.da);
  CHECK(a.dbeta == z.dbeta);
}

TEST_CASE("zoh matches its closed form, including near and at 0", "[disc][zoh]") {
  auto disc = registry().create_disc("zoh", {});
  const Outputs o = eval128(*disc, kPoints);
  const Outputs f = eval64(*disc, kPoints);
  for (size_t k = 0; k < kPoints.size(); ++k) {
    const cld z(kPoints[k].real(), kPoints[k].imag());
    INFO("z = " << kPoints[k]);
    check_close("a", o.a[k], std::exp(z), 1e-14);
    check_close("beta", o.beta[k], ref_phi(z), 1e-14);
    check_close("da", o.da[k], std::exp(z), 1e-14);
    check_close("dbeta", o.dbeta[k], ref_dphi(z), 1e-12);
    // complex64: the input is rounded to float first, so compare with the reference at that input.
    const std::complex<float> zf(kPoints[k]);
    const cld z32(zf.real(), zf.imag());
    check_close("a (complex64)", f.a[k], std::exp(z32), 2e-7);
    check_close("beta (complex64)", f.beta[k], ref_phi(z32), 2e-7);
    check_close("da (complex64)", f.da[k], std::exp(z32), 2e-7);
    check_close("dbeta (complex64)", f.dbeta[k], ref_dphi(z32), 2e-7);
  }
}

TEST_CASE("zoh at z = 0 is exactly a = 1, phi = 1, phi' = 1/2", "[disc][zoh]") {
  auto disc = registry().create_disc("zoh", {});
  const Outputs o = eval128(*disc, {cd(0, 0)});
  CHECK(o.a[0] == cd(1, 0));
  CHECK(o.beta[0] == cd(1, 0));
  CHECK(o.da[0] == cd(1, 0));
  CHECK(o.dbeta[0] == cd(0.5, 0));
}

TEST_CASE("zoh stays finite far in the left half plane", "[disc][zoh]") {
  auto disc = registry().create_disc("zoh", {});
  const Outputs o = eval128(*disc, {cd(-800, 3), cd(-40, 0)});
  CHECK(o.a[0] == cd(0, 0));
  check_close("beta(-800+3i)", o.beta[0], -1.0L / cld(-800, 3), 1e-14);
  check_close("beta(-40)", o.beta[1], ref_phi(cld(-40, 0)), 1e-14);
  CHECK(std::isfinite(o.dbeta[0].real()));
  CHECK(std::isfinite(o.dbeta[0].imag()));
}

TEST_CASE("bilinear matches its closed form", "[disc][bilinear]") {
  auto disc = registry().create_disc("bilinear", {});
  const Outputs o = eval128(*disc, kPoints);
  const Outputs f = eval64(*disc, kPoints);
  for (size_t k = 0; k < kPoints.size(); ++k) {
    INFO("z = " << kPoints[k]);
    for (int width = 0; width < 2; ++width) {
      const std::complex<float> zf(kPoints[k]);
      const cld z = width == 0 ? cld(kPoints[k].real(), kPoints[k].imag()) : cld(zf.real(), zf.imag());
      const Outputs& got = width == 0 ? o : f;
      const double tol = width == 0 ? 1e-14 : 2e-7;
      const cld w = 1.0L - z / 2.0L;
      check_close("a", got.a[k], (1.0L + z / 2.0L) / w, tol);
      check_close("beta", got.beta[k], 1.0L / w, tol);
      check_close("da", got.da[k], 1.0L / (w * w), tol);
      check_close("dbeta", got.dbeta[k], 0.5L / (w * w), tol);
    }
  }
}

TEST_CASE("derivatives match finite differences", "[disc][grad]") {
  SECTION("zoh") { check_derivatives("zoh", kPoints); }
  SECTION("bilinear") { check_derivatives("bilinear", kPoints); }
  SECTION("dirac") { check_derivatives("dirac", kPoints); }
  SECTION("backward_euler") { check_derivatives("backward_euler", kPoints); }
  SECTION("async") { check_derivatives("async", kPoints); }
  SECTION("async tau=2.5") { check_derivatives("async", kPoints, {{"tau", "2.5"}}); }
}

TEST_CASE("outputs may be null and tensors may have any shape", "[disc]") {
  for (const std::string& name : kAllNames) {
    INFO(name);
    auto disc = registry().create_disc(name, {});
    std::vector<cd> z = {{-0.5, 1}, {-0.1, 0}, {0, 0}, {-1, -2}, {0.2, 0.1}, {-3, 4}};
    const Outputs all = eval128(*disc, z);
    std::vector<cd> beta(z.size());
    ssm::View vz(z.data(), {2, 3}), vb(beta.data(), {2, 3});
    ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
    disc->eval(&ctx, vz.get(), nullptr, vb.get(), nullptr, nullptr);
    CHECK(beta == all.beta);
    // In place: beta written over z.
    disc->eval(&ctx, vz.get(), nullptr, vz.get(), nullptr, nullptr);
    CHECK(z == all.beta);
  }
}

TEST_CASE("wrong dtypes and shapes are errors naming the tensor", "[disc][errors]") {
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
  for (const std::string& name : kAllNames) {
    INFO(name);
    auto disc = registry().create_disc(name, {});
    std::vector<double> real_z(4, 0.1);
    std::vector<cd> z(4, cd(-0.1, 0.2)), out(4);
    std::vector<std::complex<float>> out32(4);
    ssm::View vreal(real_z.data(), {4}), vz(z.data(), {4}), vout(out.data(), {4}), vout32(out32.data(), {4}),
        vshort(out.data(), {3}), v2d(out.data(), {2, 2});

    CHECK_THROWS_WITH(disc->eval(&ctx, vreal.get(), vout.get(), nullptr, nullptr, nullptr),
                      Catch::Contains("'z'") && Catch::Contains("float64") && Catch::Contains("complex64 or complex128"));
    CHECK_THROWS_WITH(disc->eval(&ctx, vz.get(), vout32.get(), nullptr, nullptr, nullptr),
                      Catch::Contains("'a'") && Catch::Contains("complex64") && Catch::Contains("complex128"));
    CHECK_THROWS_WITH(disc->eval(&ctx, vz.get(), nullptr, vout32.get(), nullptr, nullptr), Catch::Contains("'beta'"));
    CHECK_THROWS_WITH(disc->eval(&ctx, vz.get(), nullptr, nullptr, vshort.get(), nullptr),
                      Catch::Contains("'da'") && Catch::Contains("(3)") && Catch::Contains("(4)"));
    CHECK_THROWS_WITH(disc->eval(&ctx, vz.get(), nullptr, nullptr, nullptr, v2d.get()),
                      Catch::Contains("'dbeta'") && Catch::Contains("(2, 2)"));
  }
}

TEST_CASE("a layer hands its options to the scheme it creates: s4da --tau reaches async", "[disc]") {
  CHECK_THROWS_WITH(registry().create_layer("s4da", {{"d_model", "4"}, {"d_state", "4"}, {"tau", "0"}}),
                    Catch::Contains("async") && Catch::Contains("option 'tau' must be > 0"));
  CHECK_NOTHROW(registry().create_layer("s4da", {{"d_model", "4"}, {"d_state", "4"}, {"tau", "0.5"}}));
}
