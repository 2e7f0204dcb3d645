# The soak program (tests/soak.c): mixed traffic on every core for a while,
# checking that nothing is lost, reordered or leaked.  Included from
# tests/CMakeLists.txt.  CTest runs it for 60 s ("soak_60s"); run it longer
# by hand, e.g. `tests/soak -t 1800 -q`.  It scales its traffic down by
# itself under ASan and TSan, and "multicore" puts it in the TSan run of
# scripts/test.sh.
add_executable(soak soak.c)
target_compile_definitions(soak PRIVATE _GNU_SOURCE)
target_link_libraries(soak PRIVATE axon Threads::Threads)
add_test(NAME soak_60s COMMAND soak -t 60)
set_tests_properties(soak_60s PROPERTIES LABELS "soak;multicore" TIMEOUT 300)
