# Writes OUT, a C++ source defining athanor_chat_phoenix_js (the text of IN), or a stand-in that
# says why the page cannot work when IN is missing (npm was unreachable at build time).
if(EXISTS "${IN}")
  file(READ "${IN}" js)
else()
  set(js "document.body.textContent = 'athanor-chat was built without the phoenix client (npm ci failed at build time)';")
endif()
file(WRITE "${OUT}.new" "// Generated from ${IN} at build time: do not edit.\nextern const char athanor_chat_phoenix_js[];\nconst char athanor_chat_phoenix_js[] = R\"athanor_js(${js})athanor_js\";\n")
file(COPY_FILE "${OUT}.new" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.new")
