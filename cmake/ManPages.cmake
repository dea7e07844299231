# Man pages: scdoc sources beside the code they describe, rendered at build
# time. korttid.toml(5)'s key reference is written by korttid-config-reference
# from the config schema, so the page lists every key the loader knows.
#   KORTTI_MAN_PAGES: AUTO (when scdoc is found), ON (scdoc required), OFF
set(KORTTI_MAN_PAGES AUTO CACHE STRING "Build the man pages with scdoc: AUTO, ON or OFF")
set_property(CACHE KORTTI_MAN_PAGES PROPERTY STRINGS AUTO ON OFF)

if(NOT KORTTI_MAN_PAGES STREQUAL "OFF")
  find_program(SCDOC scdoc)
  if(NOT SCDOC AND KORTTI_MAN_PAGES STREQUAL "ON")
    message(FATAL_ERROR "KORTTI_MAN_PAGES=ON needs scdoc (Debian: apt install scdoc)")
  endif()
endif()

if(SCDOC AND NOT KORTTI_MAN_PAGES STREQUAL "OFF")
  set(man_dir ${CMAKE_BINARY_DIR}/man)
  set(keys ${man_dir}/korttid.toml.keys.scd)
  add_custom_command(OUTPUT ${keys}
    COMMAND korttid-config-reference > ${keys}
    DEPENDS korttid-config-reference
    COMMENT "Writing korttid.toml(5)'s key reference from the config schema")
  set(pages)
  foreach(page client/kortti.1 webeid/kortti-webeid.1 daemon/korttid.8 daemon/korttid.toml.5)
    get_filename_component(name ${page} NAME)
    string(REGEX MATCH "[0-9]$" section ${name})
    set(source ${PROJECT_SOURCE_DIR}/${page}.scd)
    set(extra)
    if(name STREQUAL "korttid.toml.5")
      set(extra ${keys})
    endif()
    add_custom_command(OUTPUT ${man_dir}/${name}
      COMMAND ${CMAKE_COMMAND} -DSOURCE=${source} -DKEYS=${keys} -DSCDOC=${SCDOC} -DOUTPUT=${man_dir}/${name}
              -P ${PROJECT_SOURCE_DIR}/cmake/RenderManPage.cmake
      DEPENDS ${source} ${extra} ${PROJECT_SOURCE_DIR}/cmake/RenderManPage.cmake
      COMMENT "Rendering ${name}")
    list(APPEND pages ${man_dir}/${name})
    install(FILES ${man_dir}/${name} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(kortti_man_pages ALL DEPENDS ${pages})
endif()
