# FindCriterion: the Criterion test framework (Debian: libcriterion-dev).
#
# Why a find module and not a bare find_library: find_package() is what CMake
# lets a caller switch off (-DCMAKE_DISABLE_FIND_PACKAGE_Criterion=ON), which
# is how scripts/test proves that the service configures and builds without
# Criterion (tests/build/configure-without-test-deps.sh).
#
# Defines Criterion_FOUND and the imported target Criterion::Criterion.
find_path(Criterion_INCLUDE_DIR criterion/criterion.h)
find_library(Criterion_LIBRARY criterion)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Criterion REQUIRED_VARS Criterion_LIBRARY Criterion_INCLUDE_DIR)
if(Criterion_FOUND AND NOT TARGET Criterion::Criterion)
  add_library(Criterion::Criterion UNKNOWN IMPORTED)
  set_target_properties(Criterion::Criterion PROPERTIES IMPORTED_LOCATION "${Criterion_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${Criterion_INCLUDE_DIR}")
endif()
mark_as_advanced(Criterion_INCLUDE_DIR Criterion_LIBRARY)
