# CTest helper (spec_vectors): regenerates spec/vectors/*.qfmt and compares them byte for byte
# with the committed files, so that the vectors stay what libqfmt's writer writes.
#   cmake -DMAKE_SPEC_VECTORS=<exe> -DVECTORS_DIR=<src>/spec/vectors -DOUT_DIR=<dir>
#         [-DZSTD_VERSION=<x.y.z>] [-DPYTHON=<python3>] -P SpecVectorsTest.cmake
# With PYTHON, also runs `annotate.py --check` on the committed vectors: their NAME.hex.md and
# NAME.json (written by that independent reader, not by `qfmt dump --json`) must be up to date.
cmake_minimum_required(VERSION 3.20)   # script mode: IN_LIST and the other current policies
foreach(_var MAKE_SPEC_VECTORS VECTORS_DIR OUT_DIR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "SpecVectorsTest.cmake: -D${_var}=... is required")
  endif()
endforeach()

# zstd.qfmt's compressed bytes are those of the libzstd that wrote it (spec/vectors/README.md,
# "How they were made"); with another libzstd it is not compared (make_spec_vectors still
# reopens and verifies what it wrote).
set(_vectors_zstd_version "1.5.4")

function(run)
  string(REPLACE ";" " " _shown "${ARGN}")
  message(STATUS "running: ${_shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "failed (${_rc}): ${_shown}")
  endif()
endfunction()

# Sets <out_var> to the offset of the first byte where hex strings <a> and <b> differ, or to the
# shorter length when one is a prefix of the other (binary search on prefixes: files are small,
# but CMake has no byte loop worth running over them).
function(first_difference a b out_var)
  string(LENGTH "${a}" _la)
  string(LENGTH "${b}" _lb)
  if(_la LESS _lb)
    math(EXPR _n "${_la} / 2")
  else()
    math(EXPR _n "${_lb} / 2")
  endif()
  set(_lo 0)        # the first _lo bytes are equal
  set(_hi ${_n})    # the first _hi bytes are not all equal, unless _hi == _n
  math(EXPR _n2 "${_n} * 2")
  string(SUBSTRING "${a}" 0 ${_n2} _pa)
  string(SUBSTRING "${b}" 0 ${_n2} _pb)
  if(_pa STREQUAL _pb)
    set(${out_var} ${_n} PARENT_SCOPE)
    return()
  endif()
  while(_hi GREATER _lo)
    math(EXPR _mid "(${_lo} + ${_hi} + 1) / 2")
    math(EXPR _mid2 "${_mid} * 2")
    string(SUBSTRING "${a}" 0 ${_mid2} _pa)
    string(SUBSTRING "${b}" 0 ${_mid2} _pb)
    if(_pa STREQUAL _pb)
      set(_lo ${_mid})
    else()
      math(EXPR _hi "${_mid} - 1")
    endif()
  endwhile()
  set(${out_var} ${_lo} PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}")
run("${MAKE_SPEC_VECTORS}" "${OUT_DIR}")

file(GLOB _committed RELATIVE "${VECTORS_DIR}" "${VECTORS_DIR}/*.qfmt")
file(GLOB _written RELATIVE "${OUT_DIR}" "${OUT_DIR}/*.qfmt")
list(SORT _committed)
list(SORT _written)
if(NOT _committed)
  message(FATAL_ERROR "no .qfmt files in ${VECTORS_DIR}")
endif()

set(_failures "")
set(_skipped "")
foreach(_name IN LISTS _written)
  if(NOT _name IN_LIST _committed)
    list(APPEND _failures "${_name}: written by make_spec_vectors but not in ${VECTORS_DIR}")
  endif()
endforeach()
foreach(_name IN LISTS _committed)
  set(_ref "${VECTORS_DIR}/${_name}")
  set(_new "${OUT_DIR}/${_name}")
  if(NOT EXISTS "${_new}")
    list(APPEND _failures "${_ref}: not written by make_spec_vectors")
    continue()
  endif()
  file(READ "${_ref}" _a HEX)
  file(READ "${_new}" _b HEX)
  if(_a STREQUAL _b)
    message(STATUS "${_name}: identical")
    continue()
  endif()
  if(_name STREQUAL "zstd.qfmt" AND DEFINED ZSTD_VERSION
     AND NOT ZSTD_VERSION VERSION_EQUAL _vectors_zstd_version)
    message(STATUS "${_name}: differs, but libzstd is ${ZSTD_VERSION}, not "
                   "${_vectors_zstd_version}, whose compressed bytes it holds: not compared "
                   "(make_spec_vectors verified the regenerated file)")
    list(APPEND _skipped "${_name}")
    continue()
  endif()
  first_difference("${_a}" "${_b}" _off)
  string(LENGTH "${_a}" _la)
  string(LENGTH "${_b}" _lb)
  math(EXPR _la "${_la} / 2")
  math(EXPR _lb "${_lb} / 2")
  math(EXPR _off_hex "${_off}" OUTPUT_FORMAT HEXADECIMAL)
  if(_off LESS _la AND _off LESS _lb)
    math(EXPR _i "${_off} * 2")
    string(SUBSTRING "${_a}" ${_i} 2 _ba)
    string(SUBSTRING "${_b}" ${_i} 2 _bb)
    set(_what "byte ${_off} (${_off_hex}) is 0x${_ba} in the committed file, 0x${_bb} regenerated")
  else()
    string(CONCAT _what "the end of the shorter file, byte ${_off} (${_off_hex}): "
                        "committed ${_la} bytes, regenerated ${_lb}")
  endif()
  list(APPEND _failures "${_ref}: differs from ${_new}: first difference at ${_what}")
endforeach()

if(_failures)
  list(JOIN _failures "\n  " _shown)
  message(FATAL_ERROR "spec vectors out of date:\n  ${_shown}\n"
    "If the change is intended, regenerate them (spec/vectors/README.md, \"How they were made\").")
endif()

if(DEFINED PYTHON AND PYTHON)
  file(GLOB _paths "${VECTORS_DIR}/*.qfmt")
  list(SORT _paths)
  run("${PYTHON}" "${VECTORS_DIR}/annotate.py" --check ${_paths})
endif()
list(LENGTH _committed _count)
if(_skipped)
  message(STATUS "spec vectors: ${_count} regenerated; identical but for ${_skipped}")
else()
  message(STATUS "spec vectors: ${_count} regenerated; all identical")
endif()
