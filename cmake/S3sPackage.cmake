# S3sPackage.cmake - `cpack -G DEB` in a build directory makes
# s3seal_<version>_<arch>.deb: the binary in /usr/bin, the systemd unit
# (its ExecStart pointed at /usr/bin/s3seal), the example config in
# /etc/s3seal, the man pages (gzipped) and the README; the maintainer
# scripts in deploy/debian make the s3seal user and /var/lib/s3seal.
if(NOT TARGET s3seal)
  return()
endif()

install(TARGETS s3seal RUNTIME DESTINATION bin)

# The unit in the tree runs /usr/local/bin/s3seal (a hand install); the
# package's runs /usr/bin/s3seal.
file(READ ${PROJECT_SOURCE_DIR}/deploy/s3seal.service _s3s_unit)
string(REPLACE "/usr/local/bin/s3seal" "/usr/bin/s3seal" _s3s_unit "${_s3s_unit}")
file(WRITE ${PROJECT_BINARY_DIR}/package/s3seal.service "${_s3s_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/deploy/s3seal.service)
install(FILES ${PROJECT_BINARY_DIR}/package/s3seal.service DESTINATION /lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/s3seal.example.yaml DESTINATION /etc/s3seal)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/s3seal)

# Man pages: deploy/man, gzipped as Debian ships them.
set(_s3s_man_gz)
foreach(page s3seal.1 s3seal.yaml.5)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" _sec ${page})
  set(_gz ${PROJECT_BINARY_DIR}/package/${page}.gz)
  add_custom_command(OUTPUT ${_gz}
                     COMMAND gzip -9n -c ${PROJECT_SOURCE_DIR}/deploy/man/${page} > ${_gz}
                     DEPENDS ${PROJECT_SOURCE_DIR}/deploy/man/${page} VERBATIM)
  install(FILES ${_gz} DESTINATION share/man/man${_sec})
  list(APPEND _s3s_man_gz ${_gz})
endforeach()
add_custom_target(s3s_man ALL DEPENDS ${_s3s_man_gz})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME s3seal)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "s3seal maintainers <s3seal@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "encrypting S3 proxy")
set(CPACK_PACKAGE_DESCRIPTION
    "s3seal sits between S3 clients and an S3 backend and encrypts object data (SSE-S3, SSE-KMS, SSE-C) before the backend stores it.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The libraries s3seal links: dpkg-shlibdeps finds their packages and
# versions (libuv1, libcurl4, libssl3, libyaml-0-2, libjson-c5, libxml2,
# libsqlite3-0, libpq5, libsystemd0, ... on Debian 12); without it, the
# list by name.
find_program(S3S_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(S3S_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "adduser, libuv1, libcurl4, libssl3, libyaml-0-2, libjson-c5, libxml2, libsqlite3-0, libpq5, libsystemd0")
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
