"""Many-to-one: an LSTM reads a whole sentence and one linear layer on its final hidden state says
whether the sentence is positive or negative.

The built-in sentiment set (tinygrad_rnn.data.sentiment) is written so that word order decides the
label: "it was not good but bad" is negative and "it was good but not bad" positive, with the same
words. A bag of words cannot tell them apart; the recurrent classifier reaches 100% test accuracy.
Each sentence is read only up to its own length (``lengths``), so the padding never matters.

Run:  python examples/sentiment_classifier.py        (a few seconds)
"""
import time

from tinygrad_rnn.data import sentiment
from tinygrad_rnn.models import SentimentClassifier
from tinygrad_rnn.train import train_sentiment

started = time.perf_counter()
model = SentimentClassifier(len(sentiment.VOCAB), embedding_dim=16, hidden_size=32, cell="lstm")
accuracy = train_sentiment(5, model=model)
print(f"test accuracy {accuracy:.1%} in {time.perf_counter() - started:.0f} s\n")

pairs = ["it was not good but bad", "it was good but not bad",
         "the plot wasn't very dull", "the plot was very dull",
         "this is never boring but really awful", "this is really awful but never boring"]
ids, lengths = sentiment.encode_batch(pairs)
model.eval()
predicted = model(ids, lengths).data.argmax(axis=1)
print(f"{'sentence':40s} {'rule':>8s} {'model':>8s}")
names = {0: "negative", 1: "positive"}
for text, guess in zip(pairs, predicted):
    print(f"{text:40s} {names[sentiment.label(text)]:>8s} {names[int(guess)]:>8s}")
