"""ElectroDB: high-throughput electrolyte property databases from neural-network-potential MD."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("electrodb")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0+source"
