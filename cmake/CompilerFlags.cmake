# Warnings (as errors unless GREEKS_WERROR=OFF), ISO C17 and per-ISA flags.
option(GREEKS_WERROR "Treat warnings as errors" ON)

# -Wno-missing-field-initializers: C zero-fills the members a brace initializer
# leaves out, and our public structs rely on it (greeks/batch.h puts new output
# arrays last so older initializers stay valid).
set(GREEKS_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef -Wno-missing-field-initializers)
set(GREEKS_CXX_WARNINGS -Wall -Wextra -Wpedantic)
if(GREEKS_WERROR)
  list(APPEND GREEKS_WARNINGS -Werror)
  list(APPEND GREEKS_CXX_WARNINGS -Werror)
endif()

# Applies the project's warnings to a target of ours (never to third-party code).
function(greeks_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:${GREEKS_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CXX>:${GREEKS_CXX_WARNINGS}>)
endfunction()

# Per-ISA code generation flags. The scalar kernel gets none: it is the portable
# reference and must not be auto-vectorized into another ISA's arithmetic.
set(GREEKS_AVX2_FLAGS -mavx2 -mfma)
set(GREEKS_AVX512_FLAGS -mavx512f -mavx512dq -mavx2 -mfma)
