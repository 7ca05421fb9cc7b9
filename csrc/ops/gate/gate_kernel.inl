// The CPU gate kernel's body, included twice by gate_cpu.cpp: once portable, once compiled for
// AVX2 (picked at run time). The includer defines the 4-double vector d4 and load4 (four
// floats, widened), splat, vabs and hsum for its instruction set. Steps: a scalar fetch reads
// the strided sample straight from the caller's frame (channel sums of each sampled pixel and
// of its right neighbour, inside / pair weights) into a small padded image; everything after
// runs on flat arrays of at most 98 x 98: the histogram, grey values, moments in double
// vectors, the speckle patches from column sums, and one pass over the whole frame's colour
// sample.
//
// Speed: ~10k pixels, so what costs is latency and work per pixel, not bandwidth. Sums run in
// vector lanes (one double chain costs 4 cycles a pixel, and the compiler may not reorder
// floating-point sums), the histogram in four copies (repeated bins would serialise on
// store-to-load forwarding), weights multiply instead of branching, a one-pixel border spares
// the Laplacian its edge cases, the fetch loop keeps to the registers, and the sample's memory
// is kept per thread.

namespace {

// Per-thread memory for the sample, kept between calls: allocated afresh, its ~190 KB would
// come from mmap (above glibc's threshold) and cost ~25 us of page faults every call.
struct Scratch {
  std::vector<uint16_t> sums;
  std::vector<float> vals;
};

// The sample as an (sh + 2) x (sw + 2) image with a one-pixel BORDER_REFLECT_101 border (cv2's
// default, for the Laplacian), flat; border pixels weigh 0 in every sum. Spare elements at
// each end (one before, kSpare after) keep the vector loops' last neighbour reads inside. Only
// the border is cleared: fetch writes every interior element.
struct Sample {
  static constexpr int64_t kSpare = 4;
  int64_t sh, sw, pitch, size;
  uint16_t* sums;              // channel sum (or grey value) of pixel, right neighbour
  float *g, *r, *in, *pair;    // grey, right neighbour's grey, weights (0 or 1)
  int64_t inside = 0, pairs = 0;
  Sample(const Plan& p, Scratch& mem)
      : sh(p.sh), sw(p.sw), pitch(p.sw + 2), size((p.sh + 2) * (p.sw + 2) + 1 + kSpare) {
    if (mem.sums.size() < static_cast<size_t>(2 * size)) mem.sums.resize(2 * size);
    if (mem.vals.size() < static_cast<size_t>(4 * size)) mem.vals.resize(4 * size);
    sums = mem.sums.data();
    g = mem.vals.data() + 1;
    r = g + size;
    in = r + size;
    pair = in + size;
    clear_border(s());
    clear_border(sr());
    for (float* a : {g, r, in, pair}) clear_border(a);
  }
  int64_t at(int64_t i, int64_t j) const { return (i + 1) * pitch + j + 1; }  // sample (i, j)
  uint16_t* s() const { return sums + 1; }
  uint16_t* sr() const { return sums + 1 + size; }

 private:
  template <class T>
  void clear_border(T* a) {
    std::memset(a - 1, 0, (pitch + 1) * sizeof(T));                // front spare, top row
    std::memset(a + (sh + 1) * pitch, 0, (pitch + kSpare) * sizeof(T));  // bottom row, back spares
    for (int64_t i = 1; i <= sh; ++i) a[i * pitch] = a[i * pitch + sw + 1] = 0;
  }
};

// Scalar part: the strided reads. Channel sums are exact integers; grey values come later.
// kPacked: the usual layout (pixels packed in rows, mask bytes too) with constant offsets.
template <bool kWhole, bool kRgb, bool kPacked>
void fetch(const Image& im, const Mask& m, const Plan& p, Sample& sm) {
  const int64_t sh = p.sh, sw = p.sw, st = p.st, x0 = p.box.x0, y0 = p.box.y0;
  const int64_t sy = im.sy, msy = m.sy;
  const int64_t sx = kPacked ? (kRgb ? 3 : 1) : im.sx, sc = kPacked ? 1 : im.sc, msx = kPacked ? 1 : m.sx;
  const uint8_t *data = im.data, *mdata = m.data;
  if (sh == 0 || sw == 0) {
    // An empty box: nothing to read. Its x0 may be the frame's width, and row pointers at
    // column w of a column-flipped frame would point before its buffer (UB even unread).
    sm.inside = sm.pairs = 0;
    return;
  }
  auto sum = [&](const uint8_t* q) -> uint16_t { return kRgb ? q[0] + q[sc] + q[2 * sc] : q[0]; };
  // Columns whose right-hand neighbour exists: up to the frame's edge, not the box's.
  const int64_t paired = std::max<int64_t>(0, std::min(sw, (im.w - 1 - x0 + st - 1) / st));
  for (int64_t i = 0; i < sh; ++i) {
    const int64_t y = y0 + i * st;
    const uint8_t* row = data + y * sy + x0 * sx;
    const uint8_t* mrow = mdata + y * msy + x0 * msx;
    const int64_t k0 = sm.at(i, 0);
    uint16_t *s = sm.s() + k0, *sr = sm.sr() + k0;
    float *win = sm.in + k0, *wp = sm.pair + k0;
    for (int64_t j = 0; j < paired; ++j) {
      const uint8_t *q = row + j * st * sx, *mq = mrow + j * st * msx;
      const bool in = kWhole || mq[0] != 0;
      // Lag 1 at full resolution: lag st on the sample would blur speckle's correlation away.
      const bool pair = in && (kWhole || mq[msx] != 0);
      s[j] = sum(q);
      sr[j] = sum(q + sx);
      win[j] = in;
      wp[j] = pair;
    }
    for (int64_t j = paired; j < sw; ++j) {  // the frame's last column: no right neighbour
      s[j] = sum(row + j * st * sx);
      sr[j] = 0;
      win[j] = kWhole || mrow[j * st * msx] != 0;
      wp[j] = 0;
    }
  }
  // Counted afterwards: two more counters in the loop above would not fit the registers.
  int64_t inside = 0, pairs = 0;
  for (int64_t i = 0; i < sh; ++i) {
    const float *win = sm.in + sm.at(i, 0), *wp = sm.pair + sm.at(i, 0);
    for (int64_t j = 0; j < sw; ++j) {
      inside += win[j] != 0.0f;
      pairs += wp[j] != 0.0f;
    }
  }
  sm.inside = inside;
  sm.pairs = pairs;
}

template <bool kWhole, bool kRgb>
void fetch(const Image& im, const Mask& m, const Plan& p, Sample& sm) {
  const bool packed = im.sx == (kRgb ? 3 : 1) && (!kRgb || im.sc == 1) && m.sx == 1;
  packed ? fetch<kWhole, kRgb, true>(im, m, p, sm) : fetch<kWhole, kRgb, false>(im, m, p, sm);
}

void fetch(const Image& im, const Mask& m, const Plan& p, Sample& sm) {
  const bool rgb = im.c >= 3;
  if (p.whole) rgb ? fetch<true, true>(im, m, p, sm) : fetch<true, false>(im, m, p, sm);
  else rgb ? fetch<false, true>(im, m, p, sm) : fetch<false, false>(im, m, p, sm);
}

// Histogram of uint8(grey) over the inside, counted on the channel sums (765 at most) and
// folded: each sum's bin is truncated (sum * float(1/3)), as numpy's astype(uint8).
void histogram(const Sample& sm, bool rgb, Sums& s) {
  constexpr int kSums = 3 * 255 + 1;
  uint32_t h[4][kSums + 1];  // bin kSums: outside the region
  std::memset(h, 0, sizeof h);
  const uint16_t* cs = sm.s();
  const float* win = sm.in;
  const int64_t n = (sm.sh + 2) * sm.pitch;
  auto bin = [&](int64_t k) { return win[k] != 0.0f ? cs[k] : kSums; };
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    ++h[0][bin(k)];
    ++h[1][bin(k + 1)];
    ++h[2][bin(k + 2)];
    ++h[3][bin(k + 3)];
  }
  for (; k < n; ++k) ++h[0][bin(k)];
  const float third = rgb ? static_cast<float>(1.0 / 3.0) : 1.0f;
  for (int v = 0; v < (rgb ? kSums : 256); ++v)
    s.hist[static_cast<int>(static_cast<float>(v) * third)] += int64_t(h[0][v]) + h[1][v] + h[2][v] + h[3][v];
}

// Grey values (vectorised by the compiler; one rounded multiply, as numpy's float32) and the
// border: reflect-101 rows and columns, so the Laplacian reads cv2's values.
void grey(Sample& sm, bool rgb) {
  const float third = rgb ? static_cast<float>(1.0 / 3.0) : 1.0f;
  const uint16_t *cs = sm.s(), *csr = sm.sr();
  const int64_t n = (sm.sh + 2) * sm.pitch, sh = sm.sh, sw = sm.sw, pitch = sm.pitch;
  for (int64_t k = 0; k < n; ++k) {
    sm.g[k] = static_cast<float>(cs[k]) * third;
    sm.r[k] = static_cast<float>(csr[k]) * third;
  }
  float* g = sm.g;
  for (int64_t i = 0; i < sh; ++i) {
    float* row = g + sm.at(i, 0);
    row[-1] = row[reflect101(-1, sw)];
    row[sw] = row[reflect101(sw, sw)];
  }
  std::memcpy(g, g + sm.at(reflect101(-1, sh), -1), pitch * sizeof(float));
  std::memcpy(g + sm.at(sh, -1), g + sm.at(reflect101(sh, sh), -1), pitch * sizeof(float));
}

// Sum of fn(k), four consecutive elements at a time, over the interior rows (border columns
// weigh 0; the last group runs into the bottom border row, which weighs 0 too).
template <class Fn>
d4 lanes(const Sample& sm, Fn fn) {
  d4 acc{};
  for (int64_t k = sm.pitch, e = (sm.sh + 1) * sm.pitch; k < e; k += 4) acc += fn(k);
  return acc;
}

// Means, then centred second moments and |Laplacian|. Each pass carries a few independent
// sums (one alone would wait on its own additions) and stays within the vector registers.
void moments(const Sample& sm, Sums& s) {
  const int64_t pitch = sm.pitch;
  const float *g = sm.g, *r = sm.r, *win = sm.in, *wp = sm.pair;
  d4 sa{}, sb{};
  // Grey sums are exact in any order: at most 2^14 values of at most 47 significant bits.
  const d4 sg = lanes(sm, [&](int64_t k) {
    const d4 p = load4(wp + k), v = load4(g + k);
    sa += p * v;
    sb += p * load4(r + k);
    return load4(win + k) * v;
  });
  s.n = sm.inside;
  s.pairs = sm.pairs;
  const double mean = hsum(sg) / static_cast<double>(s.n);
  s.mean = mean;
  const d4 m = splat(mean), four = splat(4.0);
  d4 lap{};
  s.ssd = hsum(lanes(sm, [&](int64_t k) {
    const d4 w = load4(win + k), v = load4(g + k), d = v - m;
    // cv2.Laplacian(ksize=1): the 4-neighbour kernel (exact in double; cv2 rounds to float32).
    lap += w * vabs(load4(g + k - pitch) + load4(g + k + pitch) + load4(g + k - 1) + load4(g + k + 1) - four * v);
    return w * (d * d);
  }));
  s.lap = hsum(lap);
  if (s.pairs < 8) return;
  const d4 ma = splat(hsum(sa) / s.pairs), mb = splat(hsum(sb) / s.pairs);
  d4 sbb{}, sab{};
  s.saa = hsum(lanes(sm, [&](int64_t k) {
    const d4 p = load4(wp + k), da = load4(g + k) - ma, db = load4(r + k) - mb;
    sbb += p * (db * db);
    sab += p * (da * db);
    return p * (da * da);
  }));
  s.sbb = hsum(sbb);
  s.sab = hsum(sab);
}

// Speckle patches: 8 x 8 box mean and variance at each centre as cv2.blur computes them
// (reflect-101 border; its double box sums are exact, so their order does not matter), from
// per-column sums over each band of 8 rows; a patch is kept when wholly inside (the mask's box
// mean > 0.999), not dark and not constant. The float32 steps are the reference's.
void speckle(const Sample& sm, Sums& s) {
  const int64_t sh = sm.sh, sw = sm.sw;
  if (std::min(sh, sw) < kPatch) return;
  const int64_t ph = patch_count(sh), pw = patch_count(sw);
  s.snr.reserve(static_cast<size_t>(ph * pw));
  std::unique_ptr<double[]> col(new double[3 * sw]);
  double *c1 = col.get(), *c2 = c1 + sw, *cin = c2 + sw;
  constexpr int h = kPatch / 2;
  for (int64_t pi = 0; pi < ph; ++pi) {
    const int64_t cy = h + pi * kPatch;
    for (int64_t x = 0; x < sw; ++x) c1[x] = c2[x] = cin[x] = 0;
    for (int64_t dy = -h; dy < h; ++dy) {
      const int64_t k0 = sm.at(reflect101(cy + dy, sh), 0);
      const float *g = sm.g + k0, *w = sm.in + k0;
      for (int64_t x = 0; x < sw; ++x) {
        const float vv = g[x] * g[x];
        c1[x] += g[x];
        c2[x] += vv;
        cin[x] += w[x];
      }
    }
    for (int64_t pj = 0; pj < pw; ++pj) {
      const int64_t cx = h + pj * kPatch;
      double t1 = 0, t2 = 0, inside = 0;
      for (int64_t dx = -h; dx < h; ++dx) {
        const int64_t x = reflect101(cx + dx, sw);
        t1 += c1[x];
        t2 += c2[x];
        inside += cin[x];
      }
      if (inside != kPatch * kPatch) continue;  // a box mean of 63/64 is below 0.999
      const float mean = static_cast<float>(t1 / (kPatch * kPatch));
      const float e2 = static_cast<float>(t2 / (kPatch * kPatch));
      // volatile: an FMA contraction of e2 - mean * mean (-ffp-contract=fast on FMA hardware)
      // would turn a constant patch's exact 0 into its square's rounding error.
      volatile float mm = mean * mean;
      const float var = e2 - mm;
      if (mean > static_cast<float>(kDark) && var > 1e-6f) s.snr.push_back(mean / std::sqrt(var));
    }
  }
}

void colour(const Image& im, Sums& s) {
  if (im.c < 3) return;
  const int64_t fs = stride_for(std::max(im.h, im.w)), sy = im.sy, sx = im.sx, sc = im.sc;
  int64_t coloured = 0, total = 0;
  for (int64_t y = 0; y < im.h; y += fs) {
    const uint8_t* row = im.data + y * sy;
    for (int64_t x = 0; x < im.w; x += fs) {
      const uint8_t* q = row + x * sx;
      const int r = q[0], g = q[sc], b = q[2 * sc];
      coloured += std::max(std::max(r, g), b) - std::min(std::min(r, g), b) > kChroma;
      ++total;
    }
  }
  s.coloured = coloured;
  s.colour_total = total;
}

}  // namespace

Figures run(const Image& im, const Mask& m, const Box& b) {
  Plan p = region_plan(b);
  thread_local Scratch mem;
  Sample sm(p, mem);
  fetch(im, m, p, sm);  // usually the final sample: the region is rarely a sliver
  const double area = area_fraction(sm.inside, p.st, im.h, im.w);
  if (area < kMinRegion) {
    p = whole_plan(im.h, im.w);
    sm = Sample(p, mem);  // the same memory, laid out for the whole frame
    fetch(im, m, p, sm);
  }
  Sums s;
  s.n = sm.inside;
  if (s.n < kMinPixels) return finish(p, area, s);
  const bool rgb = im.c >= 3;
  histogram(sm, rgb, s);
  grey(sm, rgb);
  moments(sm, s);
  speckle(sm, s);
  colour(im, s);
  return finish(p, area, s);
}

