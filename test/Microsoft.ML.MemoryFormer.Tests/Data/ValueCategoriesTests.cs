using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Tests.Data;

public class ValueCategoriesTests
{
    /// <summary>Slot 0 continuous, slot 1 a spike (0 in 60 % of the rows, 100 in 50 rows, 200 in 20, else a rare amount held
    /// by one row), slot 2 five values 1…5, slot 3 a 0/1 flag. 200 rows.</summary>
    internal static float[] Rows(int seed)
    {
        var random = new Random(seed);
        var features = new float[200 * 4];
        for (int r = 0; r < 200; r++)
        {
            var row = features.AsSpan(r * 4, 4);
            row[0] = (float)random.NextDouble();
            row[1] = r < 120 ? 0 : r < 170 ? 100 : r < 190 ? 200 : 1000 + r;
            row[2] = 1 + r % 5;
            row[3] = random.Next(2);
        }
        return features;
    }

    [Fact]
    public void Spike_and_few_valued_slots_get_their_frequent_values_and_others_none()
    {
        var found = ValueCategories.Find(Rows(1), 4, maxDistinct: 16, minRows: 8);
        Assert.Equal(2, found.Length);
        Assert.Equal(1, found[0].Slot);
        Assert.Equal([0f, 100f, 200f], found[0].Values);          // the ten one-row amounts are left to "other"
        Assert.Equal(2, found[1].Slot);
        Assert.Equal([1f, 2f, 3f, 4f, 5f], found[1].Values);
    }

    [Fact]
    public void Fewer_distinct_values_allowed_leaves_only_the_spike_and_more_rows_needed_drops_rare_values()
    {
        var found = ValueCategories.Find(Rows(1), 4, maxDistinct: 4, minRows: 30);
        var spike = Assert.Single(found);
        Assert.Equal(1, spike.Slot);
        Assert.Equal([0f, 100f], spike.Values);
    }

    [Fact]
    public void A_value_is_encoded_as_its_category_and_unknown_values_or_nan_as_none()
    {
        var categories = new ValueCategories(1, [0f, 100f, 200f]);
        var output = new float[3];
        categories.Encode(100f, output);
        Assert.Equal([0f, 1f, 0f], output);
        categories.Encode(150f, output);
        Assert.Equal([0f, 0f, 0f], output);
        categories.Encode(float.NaN, output);
        Assert.Equal([0f, 0f, 0f], output);
        Assert.True(categories.IsValid(2));
        Assert.False(categories.IsValid(1));                                       // the slot is outside the input
        Assert.False(new ValueCategories(0, [2f, 1f]).IsValid(2));                 // values must ascend
    }
}
