/*
 * Configure-time probe (bench/naive/CMakeLists.txt, try_run): prints the highest
 * x86-64 ISA level this machine runs, "x86-64-v4", "x86-64-v3" or "x86-64-v2", or
 * "none", so that the fast-math baseline is compiled for it explicitly instead of
 * with -march=native (whose tuning can stop gcc from vectorizing; see there).
 *
 * gcc >= 12 tests the levels as the psABI defines them. Other compilers test the
 * features that set the levels apart: AVX-512F/BW/DQ/VL for v4; AVX2, FMA, BMI2 for
 * v3 (the rest of v3, e.g. MOVBE and F16C, came with them on every CPU we know);
 * SSE4.2 and POPCNT for v2.
 */
#include <stdio.h>

int main(void) {
  const char *level = "none";
#if defined(__x86_64__)
  __builtin_cpu_init();
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  if (__builtin_cpu_supports("x86-64-v4"))
    level = "x86-64-v4";
  else if (__builtin_cpu_supports("x86-64-v3"))
    level = "x86-64-v3";
  else if (__builtin_cpu_supports("x86-64-v2"))
    level = "x86-64-v2";
#else
  int v2 = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
  int v3 = v2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("bmi2");
  int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  level = v4 ? "x86-64-v4" : v3 ? "x86-64-v3" : v2 ? "x86-64-v2" : "none";
#endif
#endif
  printf("%s\n", level);
  return 0;
}
