"""PyTorch models (``torch.nn.Module``s): autograd, any device and dtype, batch-first.

Recurrent families (RNN, LSTM with its variants, GRU), attention and a decoder-only
Transformer, the Mamba block and its time-invariant twin, minGRU/minLSTM and the xLSTM cells
(sLSTM, mLSTM); the kernels under them: the linear scan (``scan``), the state-space functions
(``ssm``) and the fused LSTM.

Each mirrors a NumPy model in ``lstm_lab.scratch`` with the same parameter names, and has
``from_torch`` / ``to_torch`` for the matching ``torch.nn`` module and ``scratch_params()``
to hand its weights to the NumPy code.
"""

from lstm_lab.nn.attention import DecoderOnlyTransformer, MultiHeadAttention, TransformerBlock
from lstm_lab.nn.fused_lstm import FusedLSTMFunction, fused_lstm
from lstm_lab.nn.gru import GRU
from lstm_lab.nn.lstm import LSTM
from lstm_lab.nn.mamba import LTIBlock, MambaBlock
from lstm_lab.nn.minimal import MinGRU, MinLSTM
from lstm_lab.nn.models import SequenceModel, SSMTokenModel
from lstm_lab.nn.rnn import RNN
from lstm_lab.nn.xlstm import MLSTM, SLSTM

__all__ = [
    "RNN", "LSTM", "GRU", "SequenceModel", "FusedLSTMFunction", "fused_lstm",
    "MultiHeadAttention", "TransformerBlock", "DecoderOnlyTransformer",
    "MambaBlock", "LTIBlock", "SSMTokenModel", "MinGRU", "MinLSTM", "SLSTM", "MLSTM",
]
