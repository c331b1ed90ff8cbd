"""PyTorch models (``torch.nn.Module``s): autograd, any device and dtype, batch-first.

- Recurrent stacks: RNN, LSTM (with its variants) and GRU; minGRU/minLSTM; the xLSTM cells
  sLSTM and mLSTM.
- Sequence to sequence: an LSTM encoder-decoder with additive attention (``seq2seq``), with
  greedy and beam-search decoding.
- Attention, the Transformer's block and its stack of blocks; the Mamba block, its
  time-invariant twin and their stack.
- :class:`SequenceModel`: an embedding and a readout around any of them.
- The kernels under them: the linear scan (``scan``), the state-space functions (``ssm``)
  and the fused LSTM.

Where ``lstm_lab.scratch`` has the same model in NumPy, the parameters have the same names.
RNN, LSTM and GRU convert to and from the matching ``torch.nn`` module (``from_torch``,
``to_torch``) and hand their weights to the NumPy code (``scratch_params()``);
MultiHeadAttention converts from ``torch.nn.MultiheadAttention``.
"""

from lstm_lab.nn.attention import AdditiveAttention, MultiHeadAttention, TransformerBlock, TransformerStack
from lstm_lab.nn.fused_lstm import FusedLSTMFunction, fused_lstm
from lstm_lab.nn.gru import GRU
from lstm_lab.nn.lstm import LSTM
from lstm_lab.nn.mamba import LTIBlock, MambaBlock, MambaStack
from lstm_lab.nn.minimal import MinGRU, MinLSTM
from lstm_lab.nn.models import SequenceModel
from lstm_lab.nn.rnn import RNN
from lstm_lab.nn.seq2seq import Seq2Seq
from lstm_lab.nn.xlstm import MLSTM, SLSTM

__all__ = [
    "RNN", "LSTM", "GRU", "SequenceModel", "FusedLSTMFunction", "fused_lstm",
    "AdditiveAttention", "Seq2Seq", "MultiHeadAttention", "TransformerBlock", "TransformerStack",
    "MambaBlock", "LTIBlock", "MambaStack", "MinGRU", "MinLSTM", "SLSTM", "MLSTM",
]
