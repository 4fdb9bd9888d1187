"""featureshare: share Amazon SageMaker Feature Store across AWS accounts."""

from featureshare._version import __version__

__all__ = ["__version__"]
