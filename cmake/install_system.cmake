# install_system.cmake: installs the configuration, systemd units and the
# sysusers.d/tmpfiles.d entries for the prefix given at INSTALL time
# (`cmake --install build --prefix P`, DESTDIR honoured by file(INSTALL)).
#
# The configuration directory follows the prefix the way packages lay it
# out: /etc/sluice for /usr, P/etc/sluice otherwise -- the same rule the
# binaries use to find it (sl_config_default_path).  Run through
# install(SCRIPT); SLUICE_SOURCE_DIR and SLUICE_BINARY_DIR are set by the
# install(CODE) before it.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/")
  set(SLUICE_ETC "/etc/sluice")
else()
  set(SLUICE_ETC "${CMAKE_INSTALL_PREFIX}/etc/sluice")
endif()
set(SLUICE_BINDIR "${CMAKE_INSTALL_PREFIX}/bin")
set(SLUICE_STATE "/var/lib/sluice")
set(gen "${SLUICE_BINARY_DIR}/system")
file(MAKE_DIRECTORY "${gen}")
foreach(unit sluice-worker.service sluice-scheduler.service sluice-serve.service)
  configure_file("${SLUICE_SOURCE_DIR}/etc/systemd/${unit}.in" "${gen}/${unit}" @ONLY)
endforeach()
configure_file("${SLUICE_SOURCE_DIR}/etc/systemd/sluice.sysusers.in" "${gen}/sluice.conf" @ONLY)
configure_file("${SLUICE_SOURCE_DIR}/etc/systemd/sluice.tmpfiles.in" "${gen}/tmpfiles/sluice.conf" @ONLY)

file(INSTALL DESTINATION "${SLUICE_ETC}" TYPE FILE FILES "${SLUICE_SOURCE_DIR}/etc/sluice.yaml")
file(INSTALL DESTINATION "${SLUICE_ETC}" TYPE DIRECTORY FILES "${SLUICE_SOURCE_DIR}/etc/pipelines")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE FILES
  "${gen}/sluice-worker.service" "${gen}/sluice-scheduler.service" "${gen}/sluice-serve.service")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" TYPE FILE FILES "${gen}/sluice.conf")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/tmpfiles.d" TYPE FILE FILES "${gen}/tmpfiles/sluice.conf")
