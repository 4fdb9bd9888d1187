"""featureshare: share Amazon SageMaker Feature Store across AWS accounts.

The main entry points::

    from featureshare import assume_role, FeatureStore, GroupSpec, TrainingSet
"""

from featureshare._version import __version__
from featureshare.config import Topology, load_topology
from featureshare.errors import FeatureshareError
from featureshare.groups import Feature, FeatureGroup, FeatureStore, FeatureType, GroupSpec
from featureshare.ingest import IngestReport
from featureshare.session import AccountSession, assume_role
from featureshare.training import BuiltTrainingSet, TrainingSet

__all__ = [
    "AccountSession",
    "BuiltTrainingSet",
    "Feature",
    "FeatureGroup",
    "FeatureStore",
    "FeatureType",
    "FeatureshareError",
    "GroupSpec",
    "IngestReport",
    "Topology",
    "TrainingSet",
    "__version__",
    "assume_role",
    "load_topology",
]
