# Tests that the plugin ABI is stable and usable from outside the tree:
# the installed SDK builds the example plugin with g++, clang++/libc++ and
# the old libstdc++ ABI; the CMake package version check; exported symbols;
# abi.h as C11; the ABI against its committed baseline; and `ssmhost
# validate` itself. The scripts live in tests/sdk/ and exit 77 (skipped) only
# when a tool they need is not installed.
set(SSM_SDK_TEST_DIR ${CMAKE_CURRENT_SOURCE_DIR}/sdk)

# bash SCRIPT ARGS... as test NAME, skipped on exit status 77.
function(ssm_sdk_test name script)
  add_test(NAME ${name} COMMAND bash ${SSM_SDK_TEST_DIR}/${script} ${ARGN})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77 LABELS sdk)
endfunction()

# --- the installed SDK, used from outside the tree

ssm_sdk_test(sdk_install_out_of_tree install_out_of_tree.sh
  $<TARGET_FILE:ssmhost> ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND})
ssm_sdk_test(sdk_clang_libcxx clang_libcxx.sh
  $<TARGET_FILE:ssmhost> ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND})
ssm_sdk_test(sdk_glibcxx_old_abi glibcxx_old_abi.sh
  $<TARGET_FILE:ssmhost> ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND})
ssm_sdk_test(sdk_find_package_version find_package_version.sh
  ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_COMMAND})
# These install the whole build tree; one at a time keeps their logs apart
# and the two cores free for the builds they run.
set_tests_properties(sdk_install_out_of_tree sdk_clang_libcxx sdk_glibcxx_old_abi sdk_find_package_version
  PROPERTIES RESOURCE_LOCK ssm_sdk_install TIMEOUT 600)

# --- what a plugin library exports

ssm_sdk_test(plugin_exports_only_entry exports_only_entry.sh ${SSM_BUILD_PLUGIN_DIR})

# --- abi.h: C11, layout, and the recorded ABI

ssm_sdk_test(abi_c11 abi_c11.sh ${PROJECT_SOURCE_DIR})

# The probe library whose debug info abidw records (sdk/abi/README.md).
add_library(ssm_abi_probe SHARED ${PROJECT_SOURCE_DIR}/sdk/abi/abi_probe.c)
target_include_directories(ssm_abi_probe PRIVATE ${PROJECT_SOURCE_DIR}/sdk/include)
target_compile_options(ssm_abi_probe PRIVATE -g -Og)
set_target_properties(ssm_abi_probe PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/sdk)
# offsetof/sizeof of every boundary struct, checked when this compiles.
add_library(ssm_abi_layout_check OBJECT ${PROJECT_SOURCE_DIR}/sdk/abi/abi_layout_check.cpp)
target_link_libraries(ssm_abi_layout_check PRIVATE SSM::sdk)

set(SSM_ABI_BASELINE ${PROJECT_SOURCE_DIR}/sdk/abi/ssm_abi.baseline.xml)
ssm_sdk_test(abi_baseline abi_baseline.sh $<TARGET_FILE:ssm_abi_probe> ${SSM_ABI_BASELINE} ${PROJECT_SOURCE_DIR})
# After an intended append-only change: rewrites the baseline in the source tree.
add_custom_target(ssm_abi_baseline_refresh
  COMMAND bash ${SSM_SDK_TEST_DIR}/abi_baseline.sh $<TARGET_FILE:ssm_abi_probe> ${SSM_ABI_BASELINE}
          ${PROJECT_SOURCE_DIR} --refresh
  DEPENDS ssm_abi_probe
  COMMENT "Refreshing ${SSM_ABI_BASELINE}"
  VERBATIM)

# --- minor versions: plugins built against ABI 1.0 and a simulated 1.2

# Plain-C layer and discretization built against sdk/abi/v1.0 and
# sdk/abi/v1.2-sim into build/tests/abi_compat/v1_0 and v1_2 (never installed).
add_subdirectory(${CMAKE_CURRENT_SOURCE_DIR}/abi_compat ${CMAKE_CURRENT_BINARY_DIR}/abi_compat)
foreach(spec "1_0;1.0;q;1_2;1.2" "1_2;1.2;w;1_0;1.0")
  list(GET spec 0 ver)
  list(GET spec 1 abi)
  list(GET spec 2 suffix)
  list(GET spec 3 other_ver)
  list(GET spec 4 other_abi)
  ssm_sdk_test(abi_compat_v${ver} abi_compat.sh $<TARGET_FILE:ssmhost>
    ${CMAKE_CURRENT_BINARY_DIR}/abi_compat/v${ver} ${abi} ${suffix}
    ${CMAKE_CURRENT_BINARY_DIR}/abi_compat/v${other_ver} ${other_abi})
endforeach()

# --- ssmhost validate catches what it is for

# A layer with a chosen flaw, kept out of the plugin folder and never installed.
block()
  unset(SSM_PLUGIN_INSTALL_DIR)
  ssm_add_plugin(ssm_test_broken_layer SOURCES ${SSM_SDK_TEST_DIR}/broken_layer/broken_layer.cpp)
  set_target_properties(ssm_test_broken_layer PROPERTIES
    OUTPUT_NAME test_broken_layer
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/sdk/broken_layer)
endblock()
ssm_sdk_test(validate_detects_broken_layer validate_broken_layer.sh
  $<TARGET_FILE:ssmhost> $<TARGET_FILE:ssm_test_broken_layer>)

# `ssmhost validate` passes the real plugins: S4D with both discretizations,
# the discretizations themselves, and the SDK's examples.
foreach(id s4dz s4db zoh bilinear)
  add_test(NAME validate_${id} COMMAND $<TARGET_FILE:ssmhost> validate ${id})
  set_tests_properties(validate_${id} PROPERTIES LABELS sdk)
endforeach()
# The SDK's examples as built in the tree by tests/plugins/sdk_examples.
foreach(example moving_average residual_wrapper)
  add_test(NAME validate_example_${example}
    COMMAND $<TARGET_FILE:ssmhost> validate example_${example}
            --plugin-path $<TARGET_FILE:ssm_example_${example}>)
  set_tests_properties(validate_example_${example} PROPERTIES LABELS sdk)
endforeach()

# --- every discretization, alone and as S4D's by its suffix (issue 7)

# The schemes validate on their own, and s4d + each suffix validates. Forward
# Euler (dirac, e) is stable only while |1 + dt A| < 1, i.e. dt < 2|Re A|/|A|^2
# for every mode: with the default S4D-Lin init and d_state 64 that is
# dt < 1/(1/4 + (31 pi)^2) ~ 1.05e-4, far below dt_min (the recurrence blows
# up and validate fails, as it should). It is validated with S4D-Real
# (A = -(n+1), n < 32: dt < 2/32) and dt_max = 0.05, stable for every seed.
foreach(id dirac backward_euler async)
  add_test(NAME validate_${id} COMMAND $<TARGET_FILE:ssmhost> validate ${id})
  set_tests_properties(validate_${id} PROPERTIES LABELS sdk)
endforeach()
foreach(spec "z;zoh" "b;bilinear" "e;dirac;--set;init=real;--set;dt_max=0.05" "i;backward_euler" "a;async")
  list(POP_FRONT spec suffix disc)
  add_test(NAME validate_s4d_${disc} COMMAND $<TARGET_FILE:ssmhost> validate s4d${suffix} ${spec})
  set_tests_properties(validate_s4d_${disc} PROPERTIES LABELS sdk
    PASS_REGULAR_EXPRESSION "with discretization '${disc}'.*[0-9]+ passed, 0 failed")
endforeach()

# --- s4 (issue 7): the DPLR layer with every discretization, and s4lr

# `ssmhost validate` passes s4 with each scheme. The generalised bilinear
# ones (bilinear, backward_euler) go through the Cauchy kernel at the
# defaults. The exponential ones (zoh, async) use the dense exponential of
# each channel's state matrix: its float64 rounding (|dt A| reaches ~300 with
# HiPPO-LegS at d_state 64, dt 0.1) puts the finite differences' own noise
# near validate's 1e-5 tolerance, so they validate at d_state 16 (async also
# with dt_min 0.01: its Abar^l_max is close to I, and I - Abar^l_max cancels);
# tests/test_s4.cpp checks them against the recurrence and finite
# differences. Forward Euler (dirac) is stable on HiPPO-LegS only for
# dt < 2/N (eigenvalues -1 .. -N): d_state 16, dt_max 0.01. --mode diag
# (S4D-LegS) with zoh and the random init (s4lr) at the defaults.
foreach(spec "s4;bilinear" "s4b;bilinear" "s4i;backward_euler" "s4z;zoh;--set;d_state=16"
             "s4a;async;--set;d_state=16;--set;dt_min=0.01" "s4e;dirac;--set;d_state=16;--set;dt_max=0.01"
             "s4z;zoh;--set;mode=diag" "s4lr;bilinear")
  list(POP_FRONT spec id disc)
  string(REPLACE ";" "_" tail "${spec}")
  string(REGEX REPLACE "[^A-Za-z0-9_]" "_" tail "${tail}")
  set(name validate_s4_${id}${tail})
  set(expect "with discretization '${disc}'")
  if(id STREQUAL "s4" OR id STREQUAL "s4lr")  # no suffix: the layer's default scheme
    set(expect "layer plugin '${id}'")
  endif()
  add_test(NAME ${name} COMMAND $<TARGET_FILE:ssmhost> validate ${id} ${spec})
  set_tests_properties(${name} PROPERTIES LABELS sdk ENVIRONMENT "OMP_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "${expect}.*[0-9]+ passed, 0 failed")
endforeach()
# test_s4 loads a scheme of neither family (tests/plugins/disc_clash).
if(TARGET test_s4 AND TARGET ssm_test_disc_suffix_clash)
  add_dependencies(test_s4 ssm_test_disc_suffix_clash)
endif()

# --- s6 and mamba (issue 8)

# s6 validates with its own scheme (s6disc: Mamba's exp for A, Euler for B,
# on the scan's fast path) and with every other scheme through the plugin's
# map evaluated per chunk; chunk=5 puts chunk boundaries inside validate's
# L = 16 (and its 256-token recurrent check). s6disc validates on its own.
add_test(NAME validate_s6disc COMMAND $<TARGET_FILE:ssmhost> validate s6disc)
set_tests_properties(validate_s6disc PROPERTIES LABELS sdk)
foreach(disc s6disc zoh bilinear dirac backward_euler async)
  add_test(NAME validate_s6_${disc} COMMAND $<TARGET_FILE:ssmhost> validate s6 --set disc=${disc} --set chunk=5)
  set_tests_properties(validate_s6_${disc} PROPERTIES LABELS sdk
    PASS_REGULAR_EXPRESSION "options: chunk=5, d_model=8, disc=${disc}.*[0-9]+ passed, 0 failed")
endforeach()
# The bare selective SSM (as inside mamba), two tiles of channels (kDTile 64).
add_test(NAME validate_s6_bare COMMAND $<TARGET_FILE:ssmhost> validate s6 --set block=none --set d_model=70
         --set d_state=5 --set chunk=3)
set_tests_properties(validate_s6_bare PROPERTIES LABELS sdk)
# mamba with inner s6 (default), s4d (zoh by default, and bilinear by suffix) and s4.
foreach(inner s6 s4d s4db s4)
  add_test(NAME validate_mamba_${inner} COMMAND $<TARGET_FILE:ssmhost> validate mamba --set inner=${inner}
           --set d_state=4 --set chunk=5)
  set_tests_properties(validate_mamba_${inner} PROPERTIES LABELS sdk
    PASS_REGULAR_EXPRESSION "inner=${inner}.*gradient inner\\..*[0-9]+ passed, 0 failed")
endforeach()

# --- the baselines gated_mlp, lstm, attention, and h3 (issue 8)

# Each with its defaults (h3: inner s4db); attention also without RoPE and
# with one head; h3 with larger heads (the inner layer on d_model*head_dim
# channels) and with every inner layer, the baselines included. The PASS
# regex makes sure the inner layer's own gradients were checked.
foreach(id gated_mlp lstm attention h3)
  add_test(NAME validate_${id} COMMAND $<TARGET_FILE:ssmhost> validate ${id})
  set_tests_properties(validate_${id} PROPERTIES LABELS sdk)
endforeach()
add_test(NAME validate_gated_mlp_swish COMMAND $<TARGET_FILE:ssmhost> validate gated_mlp --set activation=swish
         --set beta=1.7)
add_test(NAME validate_attention_norope COMMAND $<TARGET_FILE:ssmhost> validate attention --set rope=false
         --set n_heads=1)
add_test(NAME validate_h3_head_dim_4 COMMAND $<TARGET_FILE:ssmhost> validate h3 --set head_dim=4 --set d_state=8)
set_tests_properties(validate_gated_mlp_swish validate_attention_norope validate_h3_head_dim_4 PROPERTIES LABELS sdk)
foreach(inner s4dz s4 s6 lstm attention gated_mlp)
  add_test(NAME validate_h3_inner_${inner} COMMAND $<TARGET_FILE:ssmhost> validate h3 --set inner=${inner}
           --set head_dim=2 --set d_state=4)
  set_tests_properties(validate_h3_inner_${inner} PROPERTIES LABELS sdk
    PASS_REGULAR_EXPRESSION "inner=${inner}.*gradient inner\\..*[0-9]+ passed, 0 failed")
endforeach()
