# Generates build_info.cpp with the git commit at every build (not only at
# configure time), so a result file never names a stale commit. The file is
# rewritten only when its content changes, so nothing relinks needlessly.
set(PARALAB_BUILD_INFO_CPP ${CMAKE_BINARY_DIR}/generated/build_info.cpp)
add_custom_target(paralab_build_info
  COMMAND ${CMAKE_COMMAND}
    -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
    -DOUTPUT=${PARALAB_BUILD_INFO_CPP}
    -DVERSION=${PROJECT_VERSION}
    -P ${CMAKE_SOURCE_DIR}/cmake/WriteBuildInfo.cmake
  BYPRODUCTS ${PARALAB_BUILD_INFO_CPP}
  COMMENT "paralab: recording git commit")
