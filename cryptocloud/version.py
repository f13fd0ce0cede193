"""Package version, from pbr metadata."""

import pbr.version

version_info = pbr.version.VersionInfo('cryptocloud')
version_string = version_info.version_string
