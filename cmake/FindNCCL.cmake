# Finds NCCL (shipped with the CUDA toolkit here, or installed on its own) and
# defines the imported target NCCL::nccl.
find_path(NCCL_INCLUDE_DIR nccl.h
  HINTS ${NCCL_ROOT} ENV NCCL_ROOT ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include)
find_library(NCCL_LIBRARY nccl
  HINTS ${NCCL_ROOT} ENV NCCL_ROOT ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
  PATH_SUFFIXES lib lib64)
if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
  message(FATAL_ERROR "CUDA backend requested but NCCL was not found (set NCCL_ROOT)")
endif()
message(STATUS "paralab: NCCL ${NCCL_LIBRARY}")
add_library(NCCL::nccl UNKNOWN IMPORTED)
set_target_properties(NCCL::nccl PROPERTIES
  IMPORTED_LOCATION ${NCCL_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${NCCL_INCLUDE_DIR})
