# whisper.cpp computes the logits of every token of a decoding batch, though for a prompt it
# reads only the last token's: the output projection (51,864 tokens) runs once per prompt
# token, and with 32 tokens or more OpenBLAS is handed it with the token matrix converted to
# f32. With the previous chunk's text as the prompt (up to 224 tokens) that is ~6 % of a
# chunk's whisper time and ~110 MB per worker (docs/PERFORMANCE.md, change 19). whisper.cpp's
# decoder graph has the one-row view for this commented out; this enables it when the batch
# asks for the last token's logits alone, and copies that row where whisper.cpp reads it.
#
# Run by whisper.cpp's CMake project (`CMAKE_PROJECT_whisper.cpp_INCLUDE` in the workspace's
# cargo configuration) on the copy of its sources whisper-rs-sys builds, never on the crate
# itself. Each edit must match exactly: a whisper-rs-sys whose sources changed fails the build
# here instead of building unpatched.

set(source "${CMAKE_CURRENT_SOURCE_DIR}/src/whisper.cpp")
set(marker "echo: prompt logits for the last token only")
file(READ "${source}" text)
string(FIND "${text}" "${marker}" already)
if(NOT already EQUAL -1)
  return()
endif()

function(replace_exactly old new)
  string(FIND "${text}" "${old}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${CMAKE_CURRENT_LIST_FILE}: ${source} no longer has:\n${old}")
  endif()
  string(REPLACE "${old}" "${new}" text "${text}")
  set(text "${text}" PARENT_SCOPE)
endfunction()

replace_exactly([=[
    // compute logits only for the last token
    // comment this line to compute logits for all n_tokens
    // might be useful in the future
    //cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);
]=] [=[
    // echo: prompt logits for the last token only, when it is the one row the batch asks for
    {
        int n_outputs = 0;
        for (int i = 0; i < batch.n_tokens; ++i) {
            n_outputs += batch.logits[i] != 0;
        }
        if (batch.n_tokens > 1 && n_outputs == 1 && batch.logits[batch.n_tokens - 1] != 0) {
            cur = ggml_view_2d(ctx0, cur, cur->ne[0], 1, cur->nb[1], (cur->ne[1] - 1)*cur->nb[1]);
        }
    }
]=])

replace_exactly([=[
    logits_out.resize(n_tokens*n_vocab);
    for (int i = 0; i < n_tokens; i++) {
        if (batch.logits[i] == 0) {
            continue;
        }
        ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*i), sizeof(float)*n_vocab);
    }
]=] [=[
    logits_out.resize(n_tokens*n_vocab);
    if (n_tokens > 1 && logits->ne[1] == 1) {
        // echo: the graph computed the last token's row alone
        ggml_backend_tensor_get(logits, logits_out.data() + n_vocab*(n_tokens - 1), 0, sizeof(float)*n_vocab);
    } else {
        for (int i = 0; i < n_tokens; i++) {
            if (batch.logits[i] == 0) {
                continue;
            }
            ggml_backend_tensor_get(logits, logits_out.data() + (n_vocab*i), sizeof(float)*(n_vocab*i), sizeof(float)*n_vocab);
        }
    }
]=])

file(WRITE "${source}" "${text}")
message(STATUS "whisper.cpp patched: ${marker}")
