# Writes OUT, a C++ source defining NAME (the text of IN), or a stand-in script that says why the
# page cannot work when IN is missing (npm was unreachable at build time).
if(EXISTS "${IN}")
  file(READ "${IN}" js)
else()
  set(js "document.body.insertAdjacentText('afterbegin', 'athanor-live was built without ${IN} (npm ci failed at build time)');")
endif()
file(WRITE "${OUT}.new" "// Generated from ${IN} at build time: do not edit.\nextern const char ${NAME}[];\nconst char ${NAME}[] = R\"athanor_js(${js})athanor_js\";\n")
file(COPY_FILE "${OUT}.new" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.new")
