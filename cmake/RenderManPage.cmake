# cmake -DSOURCE=page.scd -DKEYS=keys.scd -DSCDOC=scdoc -DOUTPUT=page -P RenderManPage.cmake
# Puts the generated key reference in place of the line "@KEYS@", then
# renders the page with scdoc (which reads standard input).
cmake_minimum_required(VERSION 3.25)
file(READ ${SOURCE} text)
if(text MATCHES "@KEYS@")
  file(READ ${KEYS} keys)
  string(REPLACE "@KEYS@" "${keys}" text "${text}")
endif()
set(filled ${OUTPUT}.scd)
file(WRITE ${filled} "${text}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${filled} OUTPUT_FILE ${OUTPUT} RESULT_VARIABLE status ERROR_VARIABLE error)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "scdoc failed on ${SOURCE}: ${error}")
endif()
