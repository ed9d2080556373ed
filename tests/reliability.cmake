# Reliability (docs/results.md, "Guarantees"): bad input and failing resources give one message
# from one rank and a documented exit code, never a hang, a crash or a half-written file.
# Included from tests/CMakeLists.txt (CB, RA, DA, BT, CLI_OUT, EXPECT_FAILURE defined there).

set(REL_OUT ${CMAKE_CURRENT_BINARY_DIR}/out/reliability)
file(MAKE_DIRECTORY ${REL_OUT})
set(WLB_TINY ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:wlb_4d> --layers 1
    --d-model 32 --heads 2 --kv-heads 1 --ffn 32 --vocab 32 --steps 1 --dp 2 --threads 1)

# Memory: a run that cannot fit is refused before it allocates, naming the options to lower.
paralab_add_cli_test(comm_bench_memory 1 "comm_bench -e 1T needs about 3 TiB per rank.*lower -e"
                     ${CB} -b 1k -e 1T -o ${CLI_OUT}/comm_bench_memory.h5)
paralab_add_cli_test(memory_limit 1 "only 1 MiB is available \\(PARALAB_MEMORY_LIMIT\\)"
                     env PARALAB_MEMORY_LIMIT=1M ${CB} -b 1k -e 64M -o ${CLI_OUT}/memory_limit.h5)
paralab_add_cli_test(ring_attention_memory 1 "ring attention needs about .*--head-dim"
                     ${RA} --head-dim 1000000 -o ${CLI_OUT}/ring_attention_memory.h5)
paralab_add_cli_test(dlrm_a2a_memory 1 "dlrm_a2a needs about .*--rows"
                     ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:dlrm_a2a>
                     --rows 2000000000 -o ${CLI_OUT}/dlrm_a2a_memory.h5)

# Options that used to be accepted or to fail deep inside a run.
paralab_add_cli_test(negative_threads 1 "--threads: Value -1 not in range"
                     ${RA} --threads -1 -o ${CLI_OUT}/negative_threads.h5)
paralab_add_cli_test(documents_above_tokens 1 "--documents 9 is more than the 8 tokens"
                     ${RA} -T 8 --documents 9 -o ${CLI_OUT}/documents_above_tokens.h5)
paralab_add_cli_test(wlb_4d_short_context 1 "--context 16 is below 32"
                     ${WLB_TINY} --context 16 -o ${CLI_OUT}/wlb_4d_short_context.h5)
paralab_add_cli_test(profile_folder 1 "--profile '.*' is a folder, not a file"
                     ${RA} --mode simulate --profile ${CMAKE_CURRENT_BINARY_DIR}
                     -o ${CLI_OUT}/profile_folder.h5)
file(READ ${CMAKE_SOURCE_DIR}/docs/profiles/cpu-local-2026-11-22.json profile_text)
string(REGEX REPLACE "\"gpus_per_node\": *[0-9]+" "\"gpus_per_node\": 2147483648" wrapped
       "${profile_text}")
file(WRITE ${REL_OUT}/gpus_2e31.json "${wrapped}")
paralab_add_cli_test(profile_gpus_overflow 1 "gpus_per_node' must be an integer from 1 to"
                     ${RA} --mode simulate --profile ${REL_OUT}/gpus_2e31.json
                     -o ${CLI_OUT}/profile_gpus_overflow.h5)
string(REGEX REPLACE "\"memory_bytes_per_s\": *[0-9.eE+-]+" "\"memory_bytes_per_s\": 1e300"
       absurd "${profile_text}")
file(WRITE ${REL_OUT}/absurd_rate.json "${absurd}")
paralab_add_cli_test(profile_absurd_rate 1 "memory_bytes_per_s' must be a finite number no larger"
                     ${RA} --mode simulate --profile ${REL_OUT}/absurd_rate.json
                     -o ${CLI_OUT}/profile_absurd_rate.h5)

# Inputs that ranks see differently (node-local paths on a cluster): an MPMD line gives rank 1
# another file. Every rank stops with rank 1's message instead of rank 0 waiting forever.
file(WRITE ${REL_OUT}/lengths_a.txt "100\n200\n300\n")
file(WRITE ${REL_OUT}/lengths_b.txt "100\n200\n301\n")
set(WLB_ONE $<TARGET_FILE:wlb_4d> --layers 1 --d-model 32 --heads 2 --kv-heads 1 --ffn 32
    --vocab 32 --steps 1 --dp 2 --threads 1 --context 512 -o ${CLI_OUT}/mpmd.h5)
paralab_add_cli_test(mpmd_missing_lengths 1 "rank 1: --lengths file: '.*missing.txt' does not exist"
                     ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 1 ${WLB_ONE}
                     --lengths file:${REL_OUT}/lengths_a.txt : ${MPIEXEC_NUMPROC_FLAG} 1 ${WLB_ONE}
                     --lengths file:${REL_OUT}/missing.txt)
paralab_add_cli_test(mpmd_different_lengths 1 "rank 1: --lengths file: .* holds other bytes than rank 0"
                     ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 1 ${WLB_ONE}
                     --lengths file:${REL_OUT}/lengths_a.txt : ${MPIEXEC_NUMPROC_FLAG} 1 ${WLB_ONE}
                     --lengths file:${REL_OUT}/lengths_b.txt)
set(BF16_ONE $<TARGET_FILE:bf16_train> --steps 1 --data text --context 16 --precision fp32
    --layers 1 --d-model 32 --heads 2 --ffn 32 --threads 1 -o ${CLI_OUT}/mpmd_corpus.h5)
paralab_add_cli_test(mpmd_missing_corpus 1 "rank 1: --corpus '.*nowhere' does not exist"
                     ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 1 ${BF16_ONE}
                     --corpus ${CMAKE_SOURCE_DIR}/docs : ${MPIEXEC_NUMPROC_FLAG} 1 ${BF16_ONE}
                     --corpus ${REL_OUT}/nowhere)
paralab_add_cli_test(mpmd_missing_profile 1 "rank 1: --profile '.*none.json' does not exist"
                     ${PARALAB_MPIRUN} ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:ring_attention>
                     --mode simulate --profile ${REL_OUT}/gpus_2e31.json -o ${CLI_OUT}/mpmd_profile.h5 :
                     ${MPIEXEC_NUMPROC_FLAG} 1 $<TARGET_FILE:ring_attention> --mode simulate
                     --profile ${REL_OUT}/none.json -o ${CLI_OUT}/mpmd_profile.h5)

# Multi-command cases (tests/cli/reliability.sh).
foreach(case divergence sigterm signal_clean same_out dev_null full_disk)
  add_test(NAME reliability_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/reliability.sh ${case}
                   ${CMAKE_BINARY_DIR}/bin ${REL_OUT}/${case} -- ${PARALAB_MPIRUN})
  set_tests_properties(reliability_${case} PROPERTIES LABELS cli ENVIRONMENT "${PARALAB_TEST_ENV}"
                       TIMEOUT 600 SKIP_RETURN_CODE 77)
endforeach()

# "-n abc" used to print DBL_MAX in 300 digits; "--op ," took the next option as its value.
paralab_add_cli_test(iters_not_a_number 1 "^comm_bench: error: --iters: Value abc not in range 1 to 1000000000$"
                     ${CB} -n abc -o ${CLI_OUT}/iters_not_a_number.h5)
paralab_add_cli_test(empty_list 1 "--op ',': an empty list"
                     ${CB} --op , -b 1k -e 1k -o ${CLI_OUT}/empty_list.h5)
