# GREEKS_SANITIZE=address,undefined builds everything with those sanitizers; any
# report aborts the process so that ctest sees a failure.
set(GREEKS_SANITIZE "" CACHE STRING "Comma-separated sanitizers (address,undefined,thread)")
if(GREEKS_SANITIZE)
  set(_san_flags -fsanitize=${GREEKS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_compile_options(${_san_flags})
  add_link_options(-fsanitize=${GREEKS_SANITIZE})
endif()
