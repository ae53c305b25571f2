# Warnings for s3seal's own targets (not for llhttp's generated sources).
function(s3s_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wshadow -Wcast-align
                         -Wwrite-strings -Wformat-security -Wstrict-prototypes)
endfunction()

# s3s_add_unit_test(MODULE NAME SOURCES... LIBS ...): one test program per file,
# registered in ctest as MODULE.NAME with the module as a label.
function(s3s_add_unit_test module name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  set(exe test_${module}_${name})
  add_executable(${exe} ${T_SOURCES})
  s3s_warnings(${exe})
  target_include_directories(${exe} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${exe} PRIVATE ${T_LIBS} s3s_testlib)
  add_test(NAME ${module}.${name} COMMAND ${exe} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${module}.${name} PROPERTIES LABELS "unit;${module}" TIMEOUT 120)
endfunction()
