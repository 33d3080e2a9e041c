using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Tests.Data;

public class OneHotGroupsTests
{
    /// <summary>Slot 0 numeric, slots 1–3 a 3-way one-hot column, slots 4–5 a 2-way one, slot 6 a 0/1 flag that is 1
    /// together with slot 5 in some rows, slot 7 numeric.</summary>
    private static float[] Rows(int rows, int seed)
    {
        var random = new Random(seed);
        var features = new float[rows * 8];
        for (int r = 0; r < rows; r++)
        {
            var row = features.AsSpan(r * 8, 8);
            row[0] = (float)random.NextDouble();
            row[1 + random.Next(3)] = 1;
            row[4 + random.Next(2)] = 1;
            row[6] = random.Next(2);
            row[7] = random.Next(5);
        }
        return features;
    }

    [Fact]
    public void Adjacent_exclusive_zero_one_slots_share_a_token_and_other_slots_keep_their_own()
    {
        var tokens = OneHotGroups.Find(Rows(200, 1), 8);
        Assert.Equal([0, 1, 1, 1, 2, 2, 3, 4], tokens!);
        Assert.Equal(5, OneHotGroups.TokenCount(tokens!));
    }

    [Fact]
    public void Without_any_group_the_result_is_null()
    {
        var features = new float[] { 0.5f, 1, 2, 0, 1.5f, 0, 3, 1 };   // slot 1 is 0/1, slot 0 numeric: nothing to merge
        Assert.Null(OneHotGroups.Find(features, 2));
    }

    [Fact]
    public void A_group_is_cut_where_a_row_would_have_two_ones()
    {
        // Slots 0 and 1 are exclusive; slot 2 is 1 together with slot 0 in row 1, so it starts a new token.
        var features = new float[] { 1, 0, 0, 0, 1, 0, 1, 0, 1 };
        Assert.Equal([0, 0, 1], OneHotGroups.Find(features, 3)!);
    }

    [Fact]
    public void Valid_groupings_are_numbered_in_slot_order_without_gaps()
    {
        Assert.True(OneHotGroups.IsValid([0, 1, 1, 2], 4));
        Assert.False(OneHotGroups.IsValid([0, 2, 2, 3], 4));
        Assert.False(OneHotGroups.IsValid([1, 1], 2));
        Assert.False(OneHotGroups.IsValid([0, 1, 0], 3));
        Assert.False(OneHotGroups.IsValid([0, 1], 3));
    }

    [Fact]
    public void Grouped_slots_are_left_raw_by_the_scaler_and_single_slots_are_standardised()
    {
        var scaler = new FeatureScaler([5f, 0.3f, 0.7f, 2f], [2f, 0.4f, 0.4f, 3f]).WithRawGroups([0, 1, 1, 2]);
        Assert.Equal([5f, 0f, 0f, 2f], scaler.Means);
        Assert.Equal([2f, 1f, 1f, 3f], scaler.Stds);
    }
}
