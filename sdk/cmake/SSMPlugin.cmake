# ssm_add_plugin(NAME SOURCES src... [CUDA_SOURCES cu...] [LIBRARIES lib...])
#
# Builds NAME as a MODULE library (libNAME.so -> NAME.so) with hidden
# visibility and a linker version script that exports only ssm_plugin_entry,
# links SSM::sdk, and installs it into SSM_PLUGIN_INSTALL_DIR. CUDA_SOURCES are
# compiled only when the CUDA language is enabled in the calling project.
#
# SSM_PLUGIN_INSTALL_DIR is relative to the install prefix, so that
# `cmake --install BUILD --prefix P` installs into P/<dir>. find_package(SSM)
# sets it to the SDK's own plugin folder (e.g. lib/ssm/plugins) and defaults
# CMAKE_INSTALL_PREFIX to the SDK's prefix, so a plain `cmake --install BUILD`
# puts the plugin beside the built-in ones. Set it (-D or set() before the
# call) to install elsewhere: a relative path still follows --prefix, an
# absolute one does not; empty or unset: no install rule.
include_guard(GLOBAL)

function(ssm_add_plugin name)
  # Found beside this file, from inside the function: a variable set at
  # include time is not visible in sibling directories of the includer.
  set(_SSM_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/ssm_plugin.map")
  cmake_parse_arguments(ARG "" "" "SOURCES;CUDA_SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ssm_add_plugin(${name}): SOURCES is required")
  endif()
  set(srcs ${ARG_SOURCES})
  get_property(langs GLOBAL PROPERTY ENABLED_LANGUAGES)
  if(ARG_CUDA_SOURCES AND "CUDA" IN_LIST langs)
    list(APPEND srcs ${ARG_CUDA_SOURCES})
  endif()
  add_library(${name} MODULE ${srcs})
  if(ARG_CUDA_SOURCES AND "CUDA" IN_LIST langs)
    target_compile_definitions(${name} PRIVATE SSM_PLUGIN_HAS_CUDA=1)
  endif()
  target_link_libraries(${name} PRIVATE SSM::sdk ${ARG_LIBRARIES})
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_SSM_PLUGIN_VERSION_SCRIPT}")
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${_SSM_PLUGIN_VERSION_SCRIPT}" "LINKER:--no-undefined")
  if(DEFINED SSM_BUILD_PLUGIN_DIR)   # in-tree: every plugin in one folder
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${SSM_BUILD_PLUGIN_DIR}")
  endif()
  if(NOT "${SSM_PLUGIN_INSTALL_DIR}" STREQUAL "")
    install(TARGETS ${name} LIBRARY DESTINATION "${SSM_PLUGIN_INSTALL_DIR}")
  endif()
endfunction()
