# Debian packages (issue 13, docs/packaging.md): `make deb` runs CPack's DEB
# generator on the build tree and writes build/deb/*.deb, one package per
# component:
#   mxd      -> mxfleet-mxd       /usr/sbin/mxd, /etc/mxfleet/mxd.conf, mxd.service
#   controld -> mxfleet-controld  /usr/sbin/controld, /usr/share/mxfleet/schema,
#                                 /etc/mxfleet/controld.conf, controld.service
#   mailctl  -> mailctl package   /usr/bin/mailctl, its bash completion
# The binaries' install() rules are in mxd/, controld/ and cli/; the rest of
# the layout is here. Only install() rules: the build itself is unchanged.
#
# Paths outside the prefix (/etc, /lib/systemd/system) are chosen when the
# install runs, as GNUInstallDirs does for the prefix /usr: under a prefix
# ending in "usr" (the package, `--prefix /usr`) they go one level up, beside
# it; under any other prefix (`cmake --install build --prefix /tmp/x`) they
# stay inside it (/tmp/x/etc/mxfleet, /tmp/x/lib/systemd/system).

set(MXFLEET_DEB_DIR ${PROJECT_SOURCE_DIR}/scripts/deb)
set(MXFLEET_DEB_COMPONENTS mxd controld mailctl)

foreach(comp ${MXFLEET_DEB_COMPONENTS})
  install(CODE [[
    if(CMAKE_INSTALL_PREFIX MATCHES "(^|/)usr/?$")
      set(MXFLEET_ROOT "..")
    else()
      set(MXFLEET_ROOT ".")
    endif()
  ]] COMPONENT ${comp})
endforeach()

# A gzip'd copy (Debian wants man pages and changelogs compressed, -n: no
# name or time stamp, so two builds give the same bytes). At install time:
# the build does not change.
function(mxfleet_install_gz src dest comp)
  get_filename_component(name ${src} NAME)
  install(CODE "
    set(_dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${dest}\")
    file(MAKE_DIRECTORY \"\${_dir}\")
    message(STATUS \"Installing (gzip): \${_dir}/${name}.gz\")
    execute_process(COMMAND gzip -9nc \"${src}\" OUTPUT_FILE \"\${_dir}/${name}.gz\"
      RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR \"gzip ${src} failed: \${_rc}\")
    endif()
    file(CHMOD \"\${_dir}/${name}.gz\" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  " COMPONENT ${comp})
endfunction()

# Default configuration: conffiles (scripts/deb/<comp>.conffiles). controld's
# names the database: 0640, group controld (set by its postinst).
install(FILES ${MXFLEET_DEB_DIR}/mxd.conf DESTINATION "\${MXFLEET_ROOT}/etc/mxfleet"
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT mxd)
install(FILES ${MXFLEET_DEB_DIR}/controld.conf DESTINATION "\${MXFLEET_ROOT}/etc/mxfleet"
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT controld)

# systemd units, man pages (gzipped) and the bash completion.
foreach(comp mxd controld)
  install(FILES ${PROJECT_SOURCE_DIR}/${comp}/systemd/${comp}.service
    DESTINATION "\${MXFLEET_ROOT}/lib/systemd/system" COMPONENT ${comp})
endforeach()
foreach(page mxd.8:mxd mxd.conf.5:mxd controld.8:controld controld.conf.5:controld
    mailctl.8:mailctl)
  string(REPLACE ":" ";" pc ${page})
  list(GET pc 0 file)
  list(GET pc 1 comp)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${file})
  mxfleet_install_gz(${PROJECT_SOURCE_DIR}/docs/man/${file} share/man/man${section} ${comp})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/cli/mailctl.bash-completion
  DESTINATION share/bash-completion/completions RENAME mailctl COMPONENT mailctl)

# /usr/share/doc/<package>: copyright and changelog.Debian.gz (lintian).
set(MXFLEET_DEB_VERSION ${PROJECT_VERSION})
set(MXFLEET_DEB_RELEASE 1)
set(CPACK_DEBIAN_MXD_PACKAGE_NAME mxfleet-mxd)
set(CPACK_DEBIAN_CONTROLD_PACKAGE_NAME mxfleet-controld)
set(CPACK_DEBIAN_MAILCTL_PACKAGE_NAME mxfleet-mailctl)
foreach(comp ${MXFLEET_DEB_COMPONENTS})
  string(TOUPPER ${comp} COMP)
  set(pkg ${CPACK_DEBIAN_${COMP}_PACKAGE_NAME})
  install(FILES ${MXFLEET_DEB_DIR}/copyright DESTINATION share/doc/${pkg}
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT ${comp})
  set(MXFLEET_DEB_PACKAGE ${pkg})
  configure_file(${MXFLEET_DEB_DIR}/changelog.Debian.in
    ${CMAKE_BINARY_DIR}/deb-doc/${pkg}/changelog.Debian @ONLY)
  mxfleet_install_gz(${CMAKE_BINARY_DIR}/deb-doc/${pkg}/changelog.Debian share/doc/${pkg} ${comp})
endforeach()

# ---- CPack ----
# cpack (and `make install`) would first run `make preinstall`, which makes
# the whole tree again: half a minute of dependency checks on a loaded CI
# machine, for nothing after `make build`. `make deb` builds first.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mxfleet)
set(CPACK_PACKAGE_VERSION ${MXFLEET_DEB_VERSION})
set(CPACK_PACKAGE_VENDOR mxfleet)
set(CPACK_PACKAGE_CONTACT "mxfleet maintainers <mxfleet@example.org>")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/deb)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL ${MXFLEET_DEB_COMPONENTS})
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${MXFLEET_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/mxfleet")
set(CPACK_DEBIAN_MXD_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_CONTROLD_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_CONTROLD_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_MAILCTL_PACKAGE_SECTION admin)
set(CPACK_COMPONENT_MXD_DESCRIPTION "mxfleet MX daemon (SMTP receiver and relay)
mxd accepts mail over SMTP with STARTTLS, spools every message durably
before it answers 250 and hands it on to the next hop of the recipient's
domain over LMTP or SMTP. With a control section it reports its outcomes
to controld and takes its configuration from the fleet.
.
The default configuration listens on the loopback addresses only and
relays for nobody; see /usr/share/doc/mxfleet-mxd and mxd.conf(5).")
set(CPACK_COMPONENT_CONTROLD_DESCRIPTION "mxfleet control daemon (gRPC over mutual TLS, PostgreSQL)
controld is the control plane of an mxfleet mail fleet: it stores the
outcomes the mxd hosts report, serves them their configuration, and
answers mailctl. Its state is in PostgreSQL; the schema migrations are
in /usr/share/mxfleet/schema (controld -c FILE migrate).")
set(CPACK_COMPONENT_MAILCTL_DESCRIPTION "mxfleet command line client
mailctl is the operator's tool for an mxfleet mail fleet: domains,
recipients, routes, TLS policies, DNS, reports, hosts and queues, all
through controld (its local socket or gRPC with an admin certificate).")
foreach(comp mxd controld)
  string(TOUPPER ${comp} COMP)
  set(CPACK_DEBIAN_${COMP}_PACKAGE_CONTROL_EXTRA
    ${MXFLEET_DEB_DIR}/${comp}/conffiles ${MXFLEET_DEB_DIR}/${comp}/postinst
    ${MXFLEET_DEB_DIR}/${comp}/prerm ${MXFLEET_DEB_DIR}/${comp}/postrm)
endforeach()
include(CPack)
