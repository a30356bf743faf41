"""One module per tab of the dock widget, in display order."""

from .advanced_tab import AdvancedTab
from .checkpoints_tab import CheckpointsTab
from .dataset_tab import DatasetTab
from .predict_tab import PredictTab
from .sam3_tab import Sam3Tab
from .train_tab import TrainTab

TAB_CLASSES = (Sam3Tab, DatasetTab, TrainTab, CheckpointsTab, PredictTab, AdvancedTab)

__all__ = ["TAB_CLASSES", "AdvancedTab", "CheckpointsTab", "DatasetTab", "PredictTab", "Sam3Tab", "TrainTab"]
