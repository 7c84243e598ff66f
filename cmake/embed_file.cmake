# Turns a file into a C array: const char NAME[] (NUL-terminated) and
# const size_t NAME_len.  Run by the build:
#   cmake -DIN=file -DOUT=file.c -DNAME=sl_x -DHEADER=x.h -P this
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " body "${body}")
file(WRITE ${OUT}.tmp "/* Generated from ${IN} by cmake/embed_file.cmake. */\n#include \"${HEADER}\"\n\nconst char ${NAME}[] = {\n    ${body}0x00\n};\nconst size_t ${NAME}_len = ${bytes};\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
